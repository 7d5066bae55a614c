package audit

import (
	"context"
	"fmt"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// The search index (Refs) is written beside the chain, not in it: a chain
// commit holds only the records, so the fsync every access waits for
// covers a few pages, not the dozens of index leaves an event's refs touch.
// The writer gathers the refs of what it committed and writes them in
// larger, non-durable transactions: after indexLinger, or sooner once
// indexBatchRecords or indexBatchRefs are pending, and at once when the
// auditor API or an export asks (syncIndex), so searches never miss an
// access this process recorded. Each source's index mark says how far its
// events are indexed; at start the log indexes its own events past its
// mark (what a crash lost), and Verify checks the index up to the marks.
const (
	indexLinger       = 100 * time.Millisecond
	indexBatchRecords = 512
	indexBatchRefs    = 8192
	// indexMaxRefs bounds what a failing index store makes the writer
	// hold; past it the pending refs are dropped (the marks did not move,
	// so the next start indexes them from the bodies).
	indexMaxRefs = 1 << 20
)

// pendingIndex is the writer's list of committed events not yet indexed.
type pendingIndex struct {
	recs  []*Record
	refs  int
	timer *time.Timer
	armed bool
}

// add queues the committed records that have index rows: their Seq and
// Keys only, so a pending search event does not keep its body (tens of
// kilobytes) alive until it is indexed.
func (p *pendingIndex) add(recs []*Record) {
	for _, r := range recs {
		if r.Kind == KindEvent && len(r.Keys) > 0 {
			p.recs = append(p.recs, &Record{Seq: r.Seq, Keys: r.Keys})
			p.refs += len(r.Keys)
		}
	}
}

func (p *pendingIndex) full() bool {
	return len(p.recs) >= indexBatchRecords || p.refs >= indexBatchRefs
}

// indexPending writes the pending index rows (writer goroutine only).
func (l *Log) indexPending() error {
	p := &l.idx
	if p.armed {
		p.timer.Stop()
		p.armed = false
	}
	if len(p.recs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.storeTimeout())
	defer cancel()
	start := time.Now()
	err := l.store.Index(ctx, l.opts.Source, p.recs)
	l.metrics.commitSeconds.WithLabelValues("index").Observe(time.Since(start).Seconds())
	if err != nil {
		l.metrics.indexFailures.Inc()
		if p.refs > indexMaxRefs {
			clear(p.recs)
			p.recs, p.refs = p.recs[:0], 0
		}
		return unavailable(err)
	}
	clear(p.recs) // let the bodies go
	p.recs, p.refs = p.recs[:0], 0
	return nil
}

// afterCommit queues what a flush committed for indexing and indexes now
// if enough is pending, else makes sure the linger timer runs.
func (l *Log) afterCommit(recs []*Record) {
	p := &l.idx
	p.add(recs)
	switch {
	case p.full():
		_ = l.indexPending()
	case len(p.recs) > 0 && !p.armed:
		if p.timer == nil {
			p.timer = time.NewTimer(indexLinger)
		} else {
			p.timer.Reset(indexLinger)
		}
		p.armed = true
	}
}

// indexTimer is the linger timer's channel, nil (never ready) when unarmed.
func (l *Log) indexTimer() <-chan time.Time {
	if !l.idx.armed {
		return nil
	}
	return l.idx.timer.C
}

// syncIndex returns once every event this log has committed is indexed, so
// a search that follows sees them. Read-only logs have nothing pending.
func (l *Log) syncIndex(ctx context.Context) error {
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return nil
	}
	ans := make(chan error, 1)
	select {
	case l.syncIdx <- ans:
	case <-l.done:
		return nil
	case <-ctx.Done():
		return unavailable(ctx.Err())
	}
	select {
	case err := <-ans:
		return err
	case <-ctx.Done():
		return unavailable(ctx.Err())
	}
}

// allSources is the index mark of catch-ups: every event up to it is
// indexed, whoever wrote it.
const allSources = "*"

// catchUpIndex indexes the events past the marks that have no index rows:
// those a crash (or a failing index store) left unindexed, by this gateway
// or by another sharing the store that stopped, and every event of a store
// migrated from the legacy index. It runs before the writer starts. An
// event another live gateway is indexing at the same time gets its rows
// twice, which readers fold.
func (l *Log) catchUpIndex(ctx context.Context) error {
	marks, err := l.store.IndexMarks(ctx)
	if err != nil {
		return err
	}
	var (
		batch   []*Record
		refs    int
		scanned int64
		indexed bool
	)
	flush := func() error {
		bySource := map[string][]*Record{}
		for _, r := range batch {
			bySource[r.Source] = append(bySource[r.Source], r)
		}
		for src, recs := range bySource {
			if err := l.store.Index(ctx, src, recs); err != nil {
				return err
			}
			indexed = true
		}
		batch, refs = batch[:0], 0
		return nil
	}
	err = l.store.Scan(ctx, marks[allSources]+1, func(r *Record) error {
		scanned = r.Seq
		if r.Kind != KindEvent || r.Seq <= indexedUpTo(marks, r.Source) {
			return nil
		}
		ev, err := fm.UnmarshalAuditEvent(r.Body)
		if err != nil {
			return fmt.Errorf("record %d unreadable: %w", r.Seq, err)
		}
		r.Keys = indexKeys(refsOf(&ev))
		r.Body = nil
		batch = append(batch, r)
		refs += len(r.Keys)
		if len(batch) >= indexBatchRecords || refs >= indexBatchRefs {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	// Moving the catch-up mark is a write: only when it saves the next
	// start real work (a start on a store it cannot write still opens,
	// and then refuses every access).
	if err == nil && (indexed || scanned-marks[allSources] > 10000) {
		err = l.store.Index(ctx, allSources, []*Record{{Seq: scanned}})
	}
	if err != nil {
		return fmt.Errorf("audit: rebuilding the search index: %w", err)
	}
	return nil
}

// indexedUpTo is the Seq up to which events of source are indexed.
func indexedUpTo(marks map[string]int64, source string) int64 {
	return max(marks[source], marks[allSources])
}
