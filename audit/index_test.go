package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// refRows counts the search index rows of the store.
func refRows(t *testing.T, tl *testLog) int {
	t.Helper()
	var n int
	if err := tl.db.QueryRow("SELECT count(*) FROM audit_search").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIndexFollowsChain: events are searchable as soon as the auditor asks,
// although their index rows are written after their (durable) commit, and
// each source's mark ends at its last event.
func TestIndexFollowsChain(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		tl := openTestLog(t, k, "", testOptions())
		recordN(t, tl.Log, 7, nil)
		ds, err := tl.Disclosures(context.Background(), "123")
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 7 {
			t.Fatalf("disclosures right after recording: %d, want 7", len(ds))
		}
		marks, err := tl.store.IndexMarks(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		head, _ := tl.store.Head(context.Background())
		if marks["gw-test"] != head.Seq {
			t.Errorf("mark of gw-test = %d, head %d", marks["gw-test"], head.Seq)
		}
	})
}

// TestIndexRebuiltAfterCrash: events committed whose index rows were lost
// (a crash between the two transactions) are verifiable, reported as
// unindexed, and indexed when their gateway starts again.
func TestIndexRebuiltAfterCrash(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		dsn := k.dsn(t)
		tl := openTestLog(t, k, dsn, testOptions())
		recordN(t, tl.Log, 3, nil)
		// Three more committed behind the writer's back, never indexed:
		// what a kill -9 after the chain commit leaves.
		var recs []*Record
		for i := range 3 {
			a := agentAccess()
			a.RequestID = fmt.Sprintf("lost-%d", i)
			rec, err := tl.record(KindEvent, newUUID(), a, PhaseComplete)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
		}
		if err := tl.Close(); err != nil {
			t.Fatal(err)
		}
		st, err := openStore(k, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Append(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
		st.Close()

		ro := testOptions()
		ro.ReadOnly = true
		rol := openTestLog(t, k, dsn, ro)
		rep, err := rol.Verify(context.Background())
		if err != nil || !rep.OK || rep.Unindexed != 3 {
			t.Fatalf("verify with 3 unindexed events = %+v, %v", rep, err)
		}
		rol.Close()

		again := openTestLog(t, k, dsn, testOptions())
		rep, err = again.Verify(context.Background())
		if err != nil || !rep.OK || rep.Unindexed != 0 || rep.Records != 6 {
			t.Fatalf("verify after restart = %+v, %v", rep, err)
		}
		ds, err := again.Disclosures(context.Background(), "123")
		if err != nil || len(ds) != 6 {
			t.Fatalf("disclosures after restart: %d, %v; want 6", len(ds), err)
		}
	})
}

// TestIndexLegacyStore: a store written before the index marks existed is
// taken as fully indexed (its records were indexed in their own
// transaction) and is not indexed twice.
func TestIndexLegacyStore(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		dsn := k.dsn(t)
		tl := openTestLog(t, k, dsn, testOptions())
		recordN(t, tl.Log, 5, nil)
		if err := tl.Close(); err != nil {
			t.Fatal(err)
		}
		raw, err := openRaw(k, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		old := &testLog{Log: &Log{store: &sqlStore{db: raw, d: dialectOf(k)}}, db: raw}
		// The legacy index: (k, v, seq) text rows, no marks.
		rows := refRows(t, old)
		old.rawExec(t, "DROP TABLE audit_search")
		old.rawExec(t, "DROP TABLE audit_index_marks")
		old.rawExec(t, "CREATE TABLE audit_refs (k TEXT NOT NULL, v TEXT NOT NULL, seq BIGINT NOT NULL)")
		old.rawExec(t, "INSERT INTO audit_refs (k, v, seq) VALUES ('entity', 'Patient/123', 3)")
		again := openTestLog(t, k, dsn, testOptions())
		rep, err := again.Verify(context.Background())
		if err != nil || !rep.OK || rep.Unindexed != 0 {
			t.Fatalf("verify of a legacy store = %+v (%+v), %v", rep, rep.Problem, err)
		}
		if n := refRows(t, again); n != rows {
			t.Errorf("index rows %d after the rebuild, want %d", n, rows)
		}
		var legacy int
		if err := again.db.QueryRow(again.store.(*sqlStore).q(dialectOf(k).tableExists), "audit_refs").Scan(&legacy); err != nil || legacy != 0 {
			t.Errorf("legacy index table left behind (%d, %v)", legacy, err)
		}
		ds, err := again.Disclosures(context.Background(), "123")
		if err != nil || len(ds) != 5 {
			t.Errorf("disclosures after the rebuild: %d, %v", len(ds), err)
		}
	})
}

// TestIndexDeletedRowsDetected: deleting an indexed event's rows (to hide
// an access from the accounting of disclosures) is an index mismatch.
func TestIndexDeletedRowsDetected(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		tl := openTestLog(t, k, "", testOptions())
		recordN(t, tl.Log, 4, nil)
		if err := tl.syncIndex(context.Background()); err != nil {
			t.Fatal(err)
		}
		tl.rawExec(t, "DELETE FROM audit_search WHERE seq = ? AND h = ?", 2, indexKey("patient", "Patient/123"))
		rep, err := tl.Verify(context.Background())
		if err != nil || rep.OK || rep.Problem.Kind != ProblemIndex || rep.Problem.Seq != 2 {
			t.Fatalf("verify after deleting index rows = %+v, %v", rep, err)
		}
	})
}

// openStore opens k's store at dsn without a Log (and so without a writer).
func openStore(k storeKind, dsn string) (Store, error) {
	if k.name == "postgres" {
		return OpenPostgres(context.Background(), dsn)
	}
	return OpenSQLite(context.Background(), strings.TrimPrefix(dsn, "sqlite://"))
}

// TestIndexCatchUpOtherSource: events another gateway committed but never
// indexed (it crashed and did not come back) are indexed by the next
// gateway that starts on the store.
func TestIndexCatchUpOtherSource(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		dsn := k.dsn(t)
		other := testOptions()
		other.Source = "gw-gone"
		gone := openTestLog(t, k, dsn, other)
		rec, err := gone.record(KindEvent, newUUID(), agentAccess(), PhaseComplete)
		if err != nil {
			t.Fatal(err)
		}
		if err := gone.Close(); err != nil {
			t.Fatal(err)
		}
		st, err := openStore(k, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Append(context.Background(), []*Record{rec}); err != nil {
			t.Fatal(err)
		}
		st.Close()
		tl := openTestLog(t, k, dsn, testOptions())
		ds, err := tl.Disclosures(context.Background(), "123")
		if err != nil || len(ds) != 1 {
			t.Fatalf("disclosures of the other gateway's event: %d, %v", len(ds), err)
		}
		rep, err := tl.Verify(context.Background())
		if err != nil || !rep.OK || rep.Unindexed != 0 {
			t.Fatalf("verify = %+v, %v", rep, err)
		}
	})
}

// TestIndexChunks: a batch larger than one chunk is written in several
// transactions (sorted by key); every value is findable afterwards, and
// the mark moves only with the last chunk.
func TestIndexChunks(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		tl := openTestLog(t, k, "", testOptions())
		recordN(t, tl.Log, 3, func(i int, a *Access) {
			a.Resources = nil
			for j := range 4000 {
				a.Resources = append(a.Resources, ResourceRef{Type: "Observation", ID: fmt.Sprintf("o%d-%d", i, j), Version: "1"})
			}
		})
		if err := tl.syncIndex(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := refRows(t, tl); n <= indexChunkRows {
			t.Fatalf("only %d index rows: the test needs more than one chunk", n)
		}
		rep, err := tl.Verify(context.Background())
		if err != nil || !rep.OK || rep.Unindexed != 0 {
			t.Fatalf("verify = %+v, %v", rep, err)
		}
		for _, ref := range []string{"Observation/o0-0", "Observation/o1-2345", "Observation/o2-3999/_history/1"} {
			recs, err := tl.store.Search(context.Background(), Query{Refs: []RefGroup{{Key: "entity", Values: []string{ref}}}, Limit: 5})
			if err != nil || len(recs) != 1 {
				t.Errorf("entity=%s: %d events, %v", ref, len(recs), err)
			}
		}
		// A batch cut short (a crash between two chunks): the rows
		// written are past the mark, so the event counts as unindexed,
		// not as a broken index.
		head, _ := tl.store.Head(context.Background())
		rec, err := tl.record(KindEvent, newUUID(), agentAccess(), PhaseComplete)
		if err != nil {
			t.Fatal(err)
		}
		if err := tl.store.Append(context.Background(), []*Record{rec}); err != nil {
			t.Fatal(err)
		}
		if err := tl.store.Index(context.Background(), "gw-test", []IndexRow{{Key: rec.Keys[0], Seq: head.Seq + 1}}, 0); err != nil {
			t.Fatal(err)
		}
		rep, err = tl.Verify(context.Background())
		if err != nil || !rep.OK || rep.Unindexed != 1 {
			t.Fatalf("verify with a half-indexed event = %+v, %v", rep, err)
		}
	})
}

// failingIndexStore fails every Index call while fail is set.
type failingIndexStore struct {
	Store
	fail atomic.Bool
}

func (s *failingIndexStore) Index(ctx context.Context, source string, rows []IndexRow, mark int64) error {
	if s.fail.Load() {
		return errors.New("database or disk is full")
	}
	return s.Store.Index(ctx, source, rows, mark)
}

// TestIndexFailureRefusesSearch: while the index cannot be written, an
// auditor search is refused (503 audit-unavailable), never answered without
// the accesses it lost; once the store recovers, the index is rebuilt from
// the bodies and nothing is missing.
func TestIndexFailureRefusesSearch(t *testing.T) {
	st, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	fs := &failingIndexStore{Store: st}
	l, err := New(context.Background(), fs, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	recordN(t, l, 2, nil)
	fs.fail.Store(true)
	recordN(t, l, 3, nil)
	if _, err := l.Disclosures(context.Background(), "123"); fhir.ReasonOf(err) != fhir.ReasonAuditUnavailable {
		t.Fatalf("disclosures with a failing index = %v, want audit-unavailable", err)
	}
	recordN(t, l, 1, nil) // recorded while the index is lost
	fs.fail.Store(false)
	ds, err := l.Disclosures(context.Background(), "123")
	if err != nil || len(ds) != 6 {
		t.Fatalf("disclosures after recovery: %d, %v; want 6", len(ds), err)
	}
	rep, err := l.Verify(context.Background())
	if err != nil || !rep.OK || rep.Unindexed != 0 {
		t.Fatalf("verify after recovery = %+v, %v", rep, err)
	}
}

// TestIndexKeyIsStable: stored index keys are SHA-256 over key NUL value,
// the first 63 bits; a change here would orphan every stored row.
func TestIndexKeyIsStable(t *testing.T) {
	for _, c := range [][2]string{{"patient", "Patient/123"}, {"entity", strings.Repeat("Observation/x", 40)}} {
		sum := sha256.Sum256([]byte(c[0] + "\x00" + c[1]))
		want := int64(binary.BigEndian.Uint64(sum[:8]) >> 1)
		if got := indexKey(c[0], c[1]); got != want {
			t.Errorf("indexKey(%q, %q) = %d, want %d", c[0], c[1], got, want)
		}
	}
}

// gatedIndexStore holds each Index call until the test lets it through.
type gatedIndexStore struct {
	Store
	gated   atomic.Bool
	calls   atomic.Int64
	tokens  chan struct{}
	waiting chan struct{} // a call is waiting at the gate
}

func (s *gatedIndexStore) Index(ctx context.Context, source string, rows []IndexRow, mark int64) error {
	if s.gated.Load() {
		s.calls.Add(1)
		s.waiting <- struct{}{}
		<-s.tokens
	}
	return s.Store.Index(ctx, source, rows, mark)
}

// TestSearchBacklogDoesNotStallAccesses: an auditor search that must wait
// for a large index backlog (several chunks) does not hold accesses back
// until all of it is written: an intent submitted meanwhile commits after
// at most the chunk in progress, and the search still sees everything.
func TestSearchBacklogDoesNotStallAccesses(t *testing.T) {
	st, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	gs := &gatedIndexStore{Store: st, tokens: make(chan struct{}, 16), waiting: make(chan struct{}, 16)}
	l, err := New(context.Background(), gs, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	release := func() { // also on failure, so that Close is not stuck at the gate
		gs.gated.Store(false)
		for range cap(gs.tokens) {
			select {
			case gs.tokens <- struct{}{}:
			default:
			}
		}
	}
	defer release()
	gs.gated.Store(true)
	// Well within the 250 ms linger, so nothing is written before the
	// search asks: three events of 4000 resources, 6+ chunks.
	recordN(t, l, 3, func(i int, a *Access) {
		a.Resources = nil
		for j := range 4000 {
			a.Resources = append(a.Resources, ResourceRef{Type: "Observation", ID: fmt.Sprintf("o%d-%d", i, j), Version: "1"})
		}
	})
	synced := make(chan error, 1)
	go func() { synced <- l.syncIndex(context.Background()) }()
	<-gs.waiting // the first chunk is being written
	intent := make(chan error, 1)
	go func() {
		_, err := l.Intent(context.Background(), agentAccess())
		intent <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); len(l.queue) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the intent never reached the writer")
		}
	}
	gs.tokens <- struct{}{} // the first chunk ends; the intent's turn
	// No more tokens: had the intent to wait for the backlog (6+ chunks),
	// it would wait forever.
	select {
	case err := <-intent:
		if err != nil {
			t.Fatal(err)
		}
	case <-synced:
		t.Fatal("the search was answered before its backlog was written")
	case <-time.After(10 * time.Second):
		t.Fatal("the intent waited for the search's backlog")
	}
	if n := gs.calls.Load(); n > 2 {
		t.Errorf("%d chunks started before the intent committed, want at most 2", n)
	}
	// Let the rest through: the search is answered and sees every value.
	release()
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"Observation/o0-0", "Observation/o2-3999"} {
		recs, err := st.Search(context.Background(), Query{Refs: []RefGroup{{Key: "entity", Values: []string{ref}}}, Limit: 5})
		if err != nil || len(recs) != 1 {
			t.Errorf("entity=%s: %d events, %v", ref, len(recs), err)
		}
	}
}
