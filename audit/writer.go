package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// unavailable is the one error kind audit writers return: whatever failed
// (store, timeout, closed log), the caller refuses with 503 audit-unavailable.
// The cause is kept for logs; the client sees only the fixed detail.
func unavailable(err error) error {
	return fhir.Wrap(fhir.ReasonAuditUnavailable, err, "the audit store cannot record this access")
}

// write is the fail-closed rule: it returns nil only once every record is
// committed; a full queue, a closed log, a store error or the write timeout
// all return audit-unavailable.
func (l *Log) write(ctx context.Context, recs ...*Record) error {
	return l.writeJob(ctx, false, recs...)
}

// lazyLinger is how long a lazy job (see job.lazy) may wait for a durable
// write to share its commit before the writer commits it alone. It bounds
// how long a completion stays un-durable after the response was sent; at
// any load above a few requests per second the next intent commits it
// sooner.
const lazyLinger = 5 * time.Millisecond

// writeJob is write with the lazy flag of job.
func (l *Log) writeJob(ctx context.Context, lazy bool, recs ...*Record) error {
	start := time.Now()
	kind := recs[0].Kind
	err := l.writeWait(ctx, recs, lazy)
	l.metrics.writeSeconds.WithLabelValues(kind).Observe(time.Since(start).Seconds())
	if err != nil {
		l.metrics.writeFailures.WithLabelValues(kind).Inc()
		return unavailable(err)
	}
	return nil
}

func (l *Log) writeWait(ctx context.Context, recs []*Record, lazy bool) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.opts.WriteTimeout)
	defer cancel()
	j := &job{recs: recs, done: make(chan error, 1), lazy: lazy}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return errClosed
	}
	select {
	case l.queue <- j:
	case <-wctx.Done():
		l.mu.RUnlock()
		return fmt.Errorf("audit queue full: %w", wctx.Err())
	}
	l.mu.RUnlock()
	select {
	case err := <-j.done:
		return err
	case <-wctx.Done():
		j.abandoned.Store(true)
		return fmt.Errorf("audit write: %w", wctx.Err())
	}
}

// run is the single writer: it gathers every queued job into one
// transaction (group commit), so N concurrent accesses cost one fsync.
// Lazy jobs wait (at most lazyLinger, at most MaxBatch records) for the
// next durable job and ride in its commit: a read then costs one fsync (its
// intent's, shared with the previous completion), not two.
func (l *Log) run() {
	defer close(l.done)
	tick := time.NewTicker(l.opts.CheckpointInterval)
	defer tick.Stop()
	linger := time.NewTimer(lazyLinger)
	linger.Stop()
	var held []*job
	heldRecs := 0
	for {
		select {
		case j := <-l.queue:
			l.idx.chunked = false // an access had its turn
			if j.lazy && heldRecs+len(j.recs) < l.opts.MaxBatch {
				if len(held) == 0 {
					linger.Reset(lazyLinger)
				}
				held = append(held, j)
				heldRecs += len(j.recs)
				continue
			}
			linger.Stop()
			l.flush(append(held, j))
			held, heldRecs = nil, 0
		case <-linger.C:
			if len(held) > 0 {
				l.flush(held)
				held, heldRecs = nil, 0
			}
		case <-l.indexTimer():
			l.indexLingered()
		case <-l.indexTurn():
			_ = l.indexStep()
			l.idx.chunked = true
		case ans := <-l.syncIdx:
			// Held completions first: a search must see them too.
			if len(held) > 0 {
				linger.Stop()
				l.flush(held)
				held, heldRecs = nil, 0
			}
			l.wantIndexed(ans)
		case <-tick.C:
			if l.sinceCP > 0 {
				l.checkpoint()
			}
		case <-l.stop:
			linger.Stop()
			for {
				select {
				case j := <-l.queue:
					held = append(held, j)
					continue
				default:
				}
				break
			}
			if len(held) > 0 {
				l.flush(held)
			}
			if err := l.indexAll(); err != nil {
				l.idx.answer(err)
			}
			if l.sinceCP > 0 {
				l.checkpoint()
			}
			return
		}
	}
}

// flush commits jobs, and whatever else is queued, up to MaxBatch records
// beyond the given ones, in one transaction.
func (l *Log) flush(jobs []*job) {
	n := 0
	for _, j := range jobs {
		n += len(j.recs)
	}
gather:
	for n < l.opts.MaxBatch {
		select {
		case j := <-l.queue:
			jobs = append(jobs, j)
			n += len(j.recs)
		default:
			break gather
		}
	}
	recs := make([]*Record, 0, n)
	for _, j := range jobs {
		recs = append(recs, j.recs...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.storeTimeout())
	start := time.Now()
	err := l.store.Append(ctx, recs)
	l.metrics.commitSeconds.WithLabelValues("chain").Observe(time.Since(start).Seconds())
	cancel()
	for _, j := range jobs {
		j.done <- err
	}
	if err != nil {
		return
	}
	l.metrics.batchRecords.Observe(float64(len(recs)))
	last := recs[len(recs)-1]
	l.head = Head{Seq: last.Seq, Hash: last.Hash}
	l.sinceCP += len(recs)
	l.afterCommit(recs)
	l.closeAbandoned(jobs) // after the head moved: it appends after recs
	for _, r := range recs {
		if r.Kind != KindEvent {
			continue
		}
		for _, s := range l.sinks {
			if !s.Enqueue(r) {
				l.metrics.sinkDropped.WithLabelValues(s.Name()).Inc()
			}
		}
	}
	if l.sinceCP >= l.opts.CheckpointEvery {
		l.checkpoint()
	}
}

// storeTimeout bounds one store transaction in the writer. It is longer
// than WriteTimeout: callers give up (and refuse) first, the writer lets a
// slow commit finish so the chain and its head stay known.
func (l *Log) storeTimeout() time.Duration { return max(2*l.opts.WriteTimeout, 10*time.Second) }

// closeAbandoned completes intents whose callers gave up waiting and
// refused the access with 503: outcome 12, audit-unavailable, nothing was
// forwarded. A failure here leaves them to closeUnfinished at next start.
func (l *Log) closeAbandoned(jobs []*job) {
	var recs []*Record
	var now time.Time
	for _, j := range jobs {
		if !j.abandoned.Load() {
			continue
		}
		if now.IsZero() {
			now = l.opts.now().UTC()
		}
		for _, in := range j.recs {
			if in.Kind != KindIntent {
				continue
			}
			ev, err := intentEvent(in)
			if err != nil {
				continue
			}
			markRefused(&ev, now)
			body, err := encodeEvent(&ev)
			if err != nil {
				continue
			}
			recs = append(recs, &Record{Kind: KindEvent, EventID: in.EventID, RequestID: in.RequestID,
				Source: in.Source, Recorded: now, Body: body, Keys: indexKeys(refsOf(&ev))})
		}
	}
	if len(recs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.storeTimeout())
	defer cancel()
	if err := l.store.Append(ctx, recs); err != nil {
		l.metrics.writeFailures.WithLabelValues(KindEvent).Inc()
		return
	}
	last := recs[len(recs)-1]
	l.head = Head{Seq: last.Seq, Hash: last.Hash}
	l.sinceCP += len(recs)
	l.afterCommit(recs)
}

func (l *Log) checkpoint() {
	cp := l.signer.sign(l.head.Seq, l.head.Hash, l.opts.Source, l.opts.now())
	ctx, cancel := context.WithTimeout(context.Background(), l.storeTimeout())
	defer cancel()
	if err := l.store.AddCheckpoint(ctx, cp); err != nil {
		l.metrics.checkpointFail.Inc()
		return
	}
	l.sinceCP = 0
	l.lastCPTime = cp.Created
}
