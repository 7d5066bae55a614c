package audit

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
	dto "github.com/prometheus/client_model/go"
	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

func TestTwoPhaseAndVerify(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		l := openTestLog(t, k, "", testOptions())
		ctx := context.Background()
		a := agentAccess()
		p, err := l.Intent(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Complete(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := p.Complete(ctx, a); err == nil {
			t.Error("second Complete accepted")
		}
		recordN(t, l.Log, 12, nil)
		rep, err := l.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK || rep.Records != 14 || rep.Head.Seq != 14 {
			t.Fatalf("verify = %+v", rep)
		}
		if rep.LastGoodCheckpoint == nil || rep.LastGoodCheckpoint.Seq < 10 {
			t.Errorf("no checkpoint after 10 records: %+v", rep)
		}
		ev, err := l.store.Event(ctx, p.EventID())
		if err != nil || ev == nil {
			t.Fatalf("event %s: %v", p.EventID(), err)
		}
		if !bytes.Contains(ev.Body, []byte(`"valueCode":"complete"`)) {
			t.Errorf("stored event is not the completion: %s", ev.Body)
		}
	})
}

// TestFailClosed: a store that cannot write makes Intent and Record fail
// with audit-unavailable, so the gateway refuses with 503.
func TestFailClosed(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		cases := []struct {
			name   string
			break_ func(t *testing.T, l *testLog)
		}{
			{"store-full", func(t *testing.T, l *testLog) { k.breakWrites(t, l.db) }},
			{"database-closed", func(t *testing.T, l *testLog) { l.db.Close() }},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				opts := testOptions()
				opts.WriteTimeout = time.Second
				l := openTestLog(t, k, "", opts)
				c.break_(t, l)
				_, err := l.Intent(context.Background(), agentAccess())
				if !errors.Is(err, &fhir.Error{Reason: fhir.ReasonAuditUnavailable}) {
					t.Fatalf("Intent error = %v, want audit-unavailable", err)
				}
				if got := fhir.ReasonOf(err).Status(); got != 503 {
					t.Errorf("status %d", got)
				}
				if err := l.Record(context.Background(), agentAccess()); fhir.ReasonOf(err) != fhir.ReasonAuditUnavailable {
					t.Errorf("Record error = %v", err)
				}
				if n := counterValue(t, l.metrics.writeFailures.WithLabelValues(KindIntent)); n != 1 {
					t.Errorf("intent failures counted %v", n)
				}
			})
		}
	})
}

func counterValue(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestNoForwardWithoutIntent shows the caller's side of the contract: the
// upstream is reached only after Intent succeeded.
func TestNoForwardWithoutIntent(t *testing.T) {
	l := openTestLog(t, sqliteKind, "", testOptions())
	sqliteKind.breakWrites(t, l.db)
	forwarded := 0
	upstream := func() { forwarded++ }
	if _, err := l.Intent(context.Background(), agentAccess()); err == nil {
		upstream()
	}
	if forwarded != 0 {
		t.Fatal("forwarded without a durable intent")
	}
}

func TestClosedLogRefuses(t *testing.T) {
	l := openTestLog(t, sqliteKind, "", testOptions())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Intent(context.Background(), agentAccess()); fhir.ReasonOf(err) != fhir.ReasonAuditUnavailable {
		t.Fatalf("Intent after Close = %v", err)
	}
	if err := l.Ready(context.Background()); err == nil {
		t.Error("Ready after Close")
	}
}

// TestClientCancelDoesNotCancelAudit: an agent that hangs up cannot cancel
// its own record.
func TestClientCancelDoesNotCancelAudit(t *testing.T) {
	l := openTestLog(t, sqliteKind, "", testOptions())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p, err := l.Intent(ctx, agentAccess())
	if err != nil {
		t.Fatalf("Intent with cancelled client context: %v", err)
	}
	if err := p.Complete(ctx, agentAccess()); err != nil {
		t.Fatalf("Complete with cancelled client context: %v", err)
	}
}

// TestGroupCommit: concurrent writers share transactions and the chain
// stays one sequence.
func TestGroupCommit(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		opts := testOptions()
		opts.CheckpointEvery = 50
		l := openTestLog(t, k, "", opts)
		const writers, each = 16, 25
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < each; i++ {
					a := agentAccess()
					a.RequestID = fmt.Sprintf("w%d-%d", w, i)
					p, err := l.Intent(context.Background(), a)
					if err == nil {
						err = p.Complete(context.Background(), a)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		rep, err := l.Verify(context.Background())
		if err != nil || !rep.OK || rep.Records != 2*writers*each {
			t.Fatalf("verify = %+v, %v", rep, err)
		}
		var m dto.Metric
		if err := l.metrics.batchRecords.Write(&m); err != nil {
			t.Fatal(err)
		}
		batches, recs := m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
		t.Logf("%s: %v records in %d transactions", k.name, recs, batches)
		if batches >= uint64(recs) {
			t.Errorf("no group commit: %d transactions for %v records", batches, recs)
		}
	})
}

// TestTamperDetected: every kind of edit to the stored chain is reported
// at the first record that cannot be trusted.
func TestTamperDetected(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, tl *testLog)
		kind   string
		seq    int64
		goodCP int64 // last good checkpoint expected
	}{
		{"untouched", func(*testing.T, *testLog) {}, "", 0, 25},
		{"flip-one-byte", func(t *testing.T, tl *testLog) {
			var body []byte
			if err := tl.db.QueryRow(tl.store.(*sqlStore).q("SELECT body FROM audit_records WHERE seq = ?"), 7).Scan(&body); err != nil {
				t.Fatal(err)
			}
			i := bytes.Index(body, []byte("agent-billing-07"))
			body[i] = 'A'
			tl.rawExec(t, "UPDATE audit_records SET body = ? WHERE seq = ?", body, 7)
		}, ProblemHash, 7, 0},
		{"delete-record", func(t *testing.T, tl *testLog) {
			tl.rawExec(t, "DELETE FROM audit_records WHERE seq = ?", 15)
		}, ProblemGap, 15, 10},
		{"swap-two", func(t *testing.T, tl *testLog) {
			tl.rawExec(t, "UPDATE audit_records SET seq = -1 WHERE seq = 13")
			tl.rawExec(t, "UPDATE audit_records SET seq = 13 WHERE seq = 14")
			tl.rawExec(t, "UPDATE audit_records SET seq = 14 WHERE seq = -1")
		}, ProblemLink, 13, 10},
		{"truncate-tail", func(t *testing.T, tl *testLog) {
			tl.rawExec(t, "DELETE FROM audit_records WHERE seq > 22")
		}, ProblemTruncated, 23, 20},
		{"rewrite-index", func(t *testing.T, tl *testLog) {
			tl.rawExec(t, "UPDATE audit_search SET h = ? WHERE seq = 18 AND h = ?", indexKey("patient", "Patient/999"), indexKey("patient", "Patient/123"))
		}, ProblemIndex, 18, 10},
		{"move-date", func(t *testing.T, tl *testLog) {
			tl.rawExec(t, "UPDATE audit_records SET recorded_us = recorded_us - 86400000000 WHERE seq = 21")
		}, ProblemIndex, 21, 20},
		{"forge-checkpoint", func(t *testing.T, tl *testLog) {
			tl.rawExec(t, "UPDATE audit_checkpoints SET hash = 'ab' WHERE seq = 20")
		}, ProblemCheckpoint, 20, 25},
	}
	forEachStore(t, func(t *testing.T, k storeKind) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				dsn := k.dsn(t)
				tl := openTestLog(t, k, dsn, testOptions())
				recordN(t, tl.Log, 25, nil)
				if err := tl.Close(); err != nil { // final checkpoint at 25
					t.Fatal(err)
				}
				raw, err := openRaw(k, dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer raw.Close()
				c.tamper(t, &testLog{Log: &Log{store: &sqlStore{db: raw, d: dialectOf(k)}}, db: raw})
				again := openTestLog(t, k, dsn, testOptions())
				rep, err := again.Verify(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if c.kind == "" {
					if !rep.OK || rep.Unanchored != 0 {
						t.Fatalf("clean chain reported %+v", rep)
					}
					return
				}
				if rep.OK || rep.Problem == nil || rep.Problem.Kind != c.kind || rep.Problem.Seq != c.seq {
					t.Fatalf("want %s at %d, got %+v (problem %+v)", c.kind, c.seq, rep, rep.Problem)
				}
				var good int64
				if rep.LastGoodCheckpoint != nil {
					good = rep.LastGoodCheckpoint.Seq
				}
				if good != c.goodCP {
					t.Errorf("last good checkpoint %d, want %d", good, c.goodCP)
				}
			})
		}
	})
}

func dialectOf(k storeKind) dialect {
	if k.name == "postgres" {
		return postgresDialect
	}
	return sqliteDialect
}

func openRaw(k storeKind, dsn string) (*sql.DB, error) {
	if k.name == "postgres" {
		return sql.Open("pgx", dsn)
	}
	return sql.Open("sqlite", "file:"+strings.TrimPrefix(dsn, "sqlite://"))
}

// TestCrashRecovery kills a child process (kill -9) right after its intent
// is durable; reopening closes the intent as incomplete and the chain
// verifies.
func TestCrashRecovery(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		dsn := k.dsn(t)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), "FHIRWALL_AUDIT_CRASH_DSN="+dsn)
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = &out
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out.String())
		}
		_, id, ok := strings.Cut(out.String(), "INTENT ")
		if !ok {
			t.Fatalf("child wrote no intent:\n%s", out.String())
		}
		id = strings.Fields(id)[0]

		// Another instance sharing the store must not close our intent.
		other := testOptions()
		other.Source = "gw-other"
		lo := openTestLog(t, k, dsn, other)
		if ev, _ := lo.store.Event(context.Background(), id); ev != nil {
			t.Fatal("another source closed this source's intent")
		}
		lo.Close()

		l := openTestLog(t, k, dsn, testOptions())
		ev, err := l.store.Event(context.Background(), id)
		if err != nil || ev == nil {
			t.Fatalf("intent %s not closed: %v", id, err)
		}
		got, err := fm.UnmarshalAuditEvent(ev.Body)
		if err != nil {
			t.Fatal(err)
		}
		if got.Outcome.Code() != "8" || deref(got.OutcomeDesc) != OutcomeIncomplete {
			t.Errorf("closed as %s/%s", got.Outcome.Code(), deref(got.OutcomeDesc))
		}
		rep, err := l.Verify(context.Background())
		if err != nil || !rep.OK || rep.Records != 2 {
			t.Fatalf("verify after crash = %+v, %v", rep, err)
		}
		res, _ := l.store.Search(context.Background(), Query{Refs: []RefGroup{{Key: "outcome", Values: []string{"8"}}}, Limit: 10})
		if len(res) != 1 {
			t.Errorf("search outcome=8 found %d", len(res))
		}
	})
}

// TestCrashChild is the child of TestCrashRecovery; it does nothing unless
// started by it.
func TestCrashChild(t *testing.T) {
	dsn := os.Getenv("FHIRWALL_AUDIT_CRASH_DSN")
	if dsn == "" {
		t.Skip("only run as TestCrashRecovery's child")
	}
	l, err := Open(context.Background(), dsn, testOptions())
	if err != nil {
		fmt.Println("OPEN FAILED", err)
		os.Exit(3)
	}
	a := agentAccess()
	p, err := l.Intent(context.Background(), a)
	if err != nil {
		fmt.Println("INTENT FAILED", err)
		os.Exit(4)
	}
	fmt.Println("INTENT", p.EventID())
	os.Stdout.Sync()
	// Mid-stream: the upstream answered, bytes are flowing, and the process
	// dies without completing.
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// TestReadOnly: the auditor commands open the log next to a running
// gateway without closing its in-flight intents or writing anything.
func TestReadOnly(t *testing.T) {
	tl := openTestLog(t, sqliteKind, "", testOptions())
	if _, err := tl.Intent(context.Background(), agentAccess()); err != nil { // in flight
		t.Fatal(err)
	}
	recordN(t, tl.Log, 2, nil)
	opts := testOptions()
	opts.ReadOnly = true
	ro, err := Open(context.Background(), tl.dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.Record(context.Background(), agentAccess()); fhir.ReasonOf(err) != fhir.ReasonAuditUnavailable {
		t.Errorf("read-only Record = %v", err)
	}
	if err := ro.Ready(context.Background()); err != nil {
		t.Errorf("read-only Ready = %v", err)
	}
	rep, err := ro.Verify(context.Background())
	if err != nil || !rep.OK || rep.Records != 3 {
		t.Fatalf("verify = %+v, %v", rep, err)
	}
	var buf bytes.Buffer
	if n, err := ro.Export(context.Background(), &buf, time.Time{}); n != 2 || err != nil {
		t.Errorf("export %d %v", n, err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	// The writer is untouched: its intent is still open and it can write.
	if unf, _ := tl.store.Unfinished(context.Background(), "gw-test"); len(unf) != 1 {
		t.Errorf("read-only open closed %d intents", 1-len(unf))
	}
	recordN(t, tl.Log, 1, nil)
}

// slowStore delays its next Append, like a disk that stalls.
type slowStore struct {
	Store
	delay atomic.Int64
}

func (s *slowStore) Append(ctx context.Context, recs []*Record) error {
	if d := s.delay.Swap(0); d > 0 {
		time.Sleep(time.Duration(d))
	}
	return s.Store.Append(ctx, recs)
}

// TestSlowStoreRefusesAndCloses: a store slower than WriteTimeout makes
// Intent fail (the caller refuses with 503); when the late intent commits,
// it is closed at once as refused, not left to look like a crash.
func TestSlowStoreRefusesAndCloses(t *testing.T) {
	st, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	slow := &slowStore{Store: st}
	opts := testOptions()
	opts.WriteTimeout = 50 * time.Millisecond
	l, err := New(context.Background(), slow, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	slow.delay.Store(int64(300 * time.Millisecond))
	if _, err := l.Intent(context.Background(), agentAccess()); fhir.ReasonOf(err) != fhir.ReasonAuditUnavailable {
		t.Fatalf("Intent on a stalled store = %v", err)
	}
	var recs []*Record
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(recs) == 0; time.Sleep(20 * time.Millisecond) {
		recs, _ = st.Search(context.Background(), Query{Refs: []RefGroup{{Key: "outcome", Values: []string{"12"}}}, Limit: 5})
	}
	if len(recs) != 1 || !bytes.Contains(recs[0].Body, []byte(`"outcomeDesc":"audit-unavailable"`)) {
		t.Fatalf("late intent not closed as refused: %d records", len(recs))
	}
	if unf, _ := st.Unfinished(context.Background(), "gw-test"); len(unf) != 0 {
		t.Errorf("%d intents left open", len(unf))
	}
	rep, err := l.Verify(context.Background())
	if err != nil || !rep.OK {
		t.Fatalf("verify %+v %v", rep, err)
	}
}

// TestSQLiteReadOnlyFile: a database file the process can no longer write
// (opened read-only, as after a remount; chmod does not stop root) refuses
// intents.
func TestSQLiteReadOnlyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ro.db")
	l, err := Open(context.Background(), "sqlite://"+path, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	recordN(t, l, 1, nil)
	l.Close()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	ro, err := New(context.Background(), &sqlStore{db: db, d: sqliteDialect}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = ro.Intent(context.Background(), agentAccess())
	if fhir.ReasonOf(err) != fhir.ReasonAuditUnavailable || !strings.Contains(err.Error(), "readonly") {
		t.Fatalf("Intent on a read-only file = %v", err)
	}
}
