package audit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// The search index is written beside the chain, not in it: a chain commit
// holds only the records, so the fsync every access waits for covers a
// few pages, not the index leaves an event's values land on. The writer
// gathers the index rows of what it committed and, after indexLinger or
// once indexBatchRows are pending, sorts them by key and writes them in
// chunks of indexChunkRows, one chunk per idle turn of the writer loop between
// chain commits (so no access waits behind a whole batch). Sorted, a batch
// touches each leaf of the index once, however random the keys: inserting
// in arrival order wrote about one 4 KiB page per 16-byte row once the
// index outgrew the page cache (a 1 GB searchset disclosed a million
// distinct resources). The auditor API, an export or an accounting of
// disclosures first has everything pending written (syncIndex), so a
// search never misses an access this process recorded. Each source's
// index mark moves with the last chunk of a batch; at start the log indexes
// the events past the marks, and Verify checks the index up to them.
const (
	indexLinger    = 250 * time.Millisecond
	indexBatchRows = 1 << 16
	indexChunkRows = 2048
	// indexMaxRows bounds what the writer holds: past it (the index store
	// is slower than the chain, or failing) it writes chunks before it
	// takes the next chain commit.
	indexMaxRows = 4 * indexBatchRows
)

// IndexRow is one row of the search index: the indexKey of a value of the
// event at Seq.
type IndexRow struct{ Key, Seq int64 }

// pendingIndex is the writer's index work (writer goroutine only).
type pendingIndex struct {
	rows    []IndexRow // committed, not yet in a batch
	rowsMax int64      // highest Seq in rows
	batch   []IndexRow // sorted by key, being written chunk by chunk
	mark    int64      // the source's mark once batch is written
	timer   *time.Timer
	armed   bool
	// lost is set when an index write failed and its rows were dropped:
	// until a catch-up from the marks (which did not move) has indexed
	// them again, nothing more is queued and a search is refused rather
	// than answered without them.
	lost bool
	// waiters are syncIndex calls answered once batch is written: it
	// then holds everything committed when they asked.
	waiters []chan<- error
	// chunked says the writer loop's last turn wrote a chunk, so that
	// while waiters wait, chunks and chain commits alternate.
	chunked bool
}

// answer tells every waiter how the batch they waited for ended.
func (p *pendingIndex) answer(err error) {
	for _, w := range p.waiters {
		w <- err
	}
	p.waiters = nil
}

// add queues the index rows of committed records (Keys only: a pending
// search event does not keep its body alive until it is indexed).
func (p *pendingIndex) add(recs []*Record) {
	for _, r := range recs {
		if r.Kind != KindEvent || len(r.Keys) == 0 {
			continue
		}
		for _, k := range r.Keys {
			p.rows = append(p.rows, IndexRow{Key: k, Seq: r.Seq})
		}
		p.rowsMax = max(p.rowsMax, r.Seq)
	}
}

// startBatch moves the pending rows into the batch being written, sorted.
func (p *pendingIndex) startBatch() {
	if len(p.rows) == 0 {
		return
	}
	p.batch = append(p.batch, p.rows...)
	p.mark = max(p.mark, p.rowsMax)
	p.rows, p.rowsMax = p.rows[:0], 0
	slices.SortFunc(p.batch, func(a, b IndexRow) int {
		if c := cmp.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	if p.armed {
		p.timer.Stop()
		p.armed = false
	}
}

// indexStep writes the next chunk of the batch (writer goroutine only).
// A failure drops the work and marks the index lost (see pendingIndex):
// the marks did not move, so recoverIndex rebuilds it from the bodies.
func (l *Log) indexStep() error {
	p := &l.idx
	if len(p.batch) == 0 {
		return nil
	}
	n := min(indexChunkRows, len(p.batch))
	var mark int64
	if n == len(p.batch) {
		mark = p.mark
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.storeTimeout())
	defer cancel()
	start := time.Now()
	err := l.store.Index(ctx, l.opts.Source, p.batch[:n], mark)
	l.metrics.commitSeconds.WithLabelValues("index").Observe(time.Since(start).Seconds())
	if err != nil {
		l.metrics.indexFailures.Inc()
		p.batch, p.mark = nil, 0
		p.rows, p.rowsMax = nil, 0
		p.lost = true
		p.arm()
		p.answer(unavailable(err))
		return unavailable(err)
	}
	p.batch = p.batch[n:]
	if len(p.batch) == 0 {
		p.batch, p.mark = nil, 0 // let the batch's array go
		p.answer(nil)
	}
	return nil
}

// wantIndexed answers ans once every event committed so far is indexed
// (syncIndex; writer goroutine only). It does not write the batch at
// once: the loop writes one chunk per turn, taking turns with chain
// commits (see indexTurn), so accesses go on while an auditor's search
// waits for a large backlog instead of all of them waiting for it.
func (l *Log) wantIndexed(ans chan<- error) {
	if l.idx.lost {
		ans <- l.recoverIndex()
		return
	}
	l.idx.startBatch()
	if len(l.idx.batch) == 0 {
		ans <- nil
		return
	}
	l.idx.waiters = append(l.idx.waiters, ans)
}

// recoverIndex indexes, from their bodies, every event past the marks
// after an index write failed; it retries at each linger and sync until it
// succeeds (writer goroutine only).
func (l *Log) recoverIndex() error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*l.storeTimeout())
	defer cancel()
	if err := l.catchUpIndex(ctx); err != nil {
		l.metrics.indexFailures.Inc()
		l.idx.arm()
		return unavailable(err)
	}
	l.idx.lost = false
	return nil
}

// indexAll writes everything pending at once (stop).
func (l *Log) indexAll() error {
	if l.idx.lost {
		return l.recoverIndex()
	}
	l.idx.startBatch()
	for len(l.idx.batch) > 0 {
		if err := l.indexStep(); err != nil {
			return err
		}
	}
	return nil
}

// afterCommit queues what a flush committed for indexing: it starts a
// batch when enough is pending (or makes sure the linger timer runs), and
// writes chunks at once if the writer holds too much.
func (l *Log) afterCommit(recs []*Record) {
	p := &l.idx
	if p.lost {
		return // recoverIndex will read them from the store
	}
	p.add(recs)
	if len(p.rows) >= indexBatchRows && len(p.batch) == 0 {
		p.startBatch()
	}
	for len(p.rows)+len(p.batch) > indexMaxRows && len(p.batch) > 0 {
		_ = l.indexStep()
	}
	if len(p.rows) > 0 {
		p.arm()
	}
}

// arm makes sure the linger timer runs.
func (p *pendingIndex) arm() {
	if p.armed {
		return
	}
	if p.timer == nil {
		p.timer = time.NewTimer(indexLinger)
	} else {
		p.timer.Reset(indexLinger)
	}
	p.armed = true
}

// indexTimer is the linger timer's channel, nil (never ready) when unarmed.
func (l *Log) indexTimer() <-chan time.Time {
	if !l.idx.armed {
		return nil
	}
	return l.idx.timer.C
}

// indexLinger fired: start a batch of what is pending.
func (l *Log) indexLingered() {
	l.idx.armed = false
	if l.idx.lost {
		_ = l.recoverIndex()
		return
	}
	if len(l.idx.batch) == 0 {
		l.idx.startBatch()
	}
}

// ready is a closed channel: a select case on it is always ready.
var ready = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// indexTurn is ready while a batch is being written and no access waits
// for a chain commit, so the writer loop writes chunks between commits and
// never makes an access wait behind one it could have started before;
// nil (never ready) otherwise. Past indexMaxRows afterCommit writes chunks
// anyway, so a steady load cannot starve the index. While a search waits
// for the batch, chunks and chain commits alternate: the search is not
// starved, and an access waits for at most one chunk, not for the batch.
func (l *Log) indexTurn() <-chan struct{} {
	p := &l.idx
	if len(p.batch) == 0 || len(l.queue) > 0 && (len(p.waiters) == 0 || p.chunked) {
		return nil
	}
	return ready
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
		bySource = map[string][]IndexRow{}
		lastSeq  = map[string]int64{}
		rows     int
		scanned  int64
		indexed  bool
	)
	flush := func() error {
		for src, batch := range bySource {
			slices.SortFunc(batch, func(a, b IndexRow) int { return cmp.Compare(a.Key, b.Key) })
			if err := l.store.Index(ctx, src, batch, lastSeq[src]); err != nil {
				return err
			}
			indexed = true
		}
		clear(bySource)
		rows = 0
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
		for _, k := range indexKeys(refsOf(&ev)) {
			bySource[r.Source] = append(bySource[r.Source], IndexRow{Key: k, Seq: r.Seq})
			rows++
		}
		lastSeq[r.Source] = r.Seq
		if rows >= indexBatchRows {
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
		err = l.store.Index(ctx, allSources, nil, scanned)
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
