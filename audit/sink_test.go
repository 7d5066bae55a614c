package audit

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestJSONLinesSink(t *testing.T) {
	var out lockedBuffer
	opts := testOptions()
	opts.Sinks = []Sink{NewJSONLinesSink(&out, 16)}
	tl := openTestLog(t, sqliteKind, "", opts)
	p, err := tl.Intent(context.Background(), agentAccess())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Complete(context.Background(), agentAccess()); err != nil {
		t.Fatal(err)
	}
	recordN(t, tl.Log, 2, nil)
	if err := tl.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 { // intents are not forwarded, events are
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, `{"id":`) || !strings.HasSuffix(l, `"resourceType":"AuditEvent"}`) {
			t.Errorf("line is not an AuditEvent: %s", l)
		}
	}
}

func TestFHIRSinkRetries(t *testing.T) {
	var calls atomic.Int32
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if r.URL.Path != "/fhir/AuditEvent" || r.Method != http.MethodPost {
			w.WriteHeader(404)
			return
		}
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got.Store(string(b))
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	opts := testOptions()
	opts.Sinks = []Sink{NewFHIRSink(srv.URL+"/fhir", nil, 16, 5, 10*time.Millisecond)}
	tl := openTestLog(t, sqliteKind, "", opts)
	recordN(t, tl.Log, 1, nil)
	if err := tl.Close(); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 {
		t.Errorf("%d calls, want 2 failures then success", calls.Load())
	}
	if s, _ := got.Load().(string); !strings.Contains(s, `"resourceType":"AuditEvent"`) {
		t.Errorf("repository received %q", s)
	}
}

func TestFHIRSinkPermanentFailure(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer srv.Close()
	opts := testOptions()
	opts.Sinks = []Sink{NewFHIRSink(srv.URL, nil, 16, 5, time.Millisecond)}
	tl := openTestLog(t, sqliteKind, "", opts)
	recordN(t, tl.Log, 1, nil)
	m := tl.metrics
	if err := tl.Close(); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("400 retried: %d calls", calls.Load())
	}
	if n := counterValue(t, m.sinkFailures.WithLabelValues("fhir")); n != 1 {
		t.Errorf("failures = %v", n)
	}
}

// blockingWriter blocks every write until released, like a stalled stdout.
type blockingWriter struct{ release chan struct{} }

func (b *blockingWriter) Write(p []byte) (int, error) {
	<-b.release
	return len(p), nil
}

// TestSinkNeverBlocks: a stalled sink drops (and counts) instead of
// slowing the request path.
func TestSinkNeverBlocks(t *testing.T) {
	bw := &blockingWriter{release: make(chan struct{})}
	opts := testOptions()
	opts.Sinks = []Sink{NewJSONLinesSink(bw, 2)}
	tl := openTestLog(t, sqliteKind, "", opts)
	done := make(chan struct{})
	go func() {
		recordN(t, tl.Log, 10, nil)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("recording blocked on a stalled sink")
	}
	// The writer hands events to the sinks just after it tells the
	// callers their records are durable, so the last drops may be counted
	// a moment after recordN returns.
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := counterValue(t, tl.metrics.sinkDropped.WithLabelValues("jsonl"))
		if n >= 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("dropped %v, want at least 7 of 10 with a queue of 2", n)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(bw.release)
}
