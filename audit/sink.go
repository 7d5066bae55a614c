package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// Sink receives final events after they are durable in the store. Forwarding
// is a copy for log shippers and external audit repositories, never the
// record itself: Enqueue must not block and may drop (returning false; the
// Log counts drops in fhirwall_audit_forward_dropped_total).
type Sink interface {
	Name() string
	Enqueue(r *Record) bool
	// Close delivers what is queued, within a bounded time, and stops.
	Close() error
}

// sinkCloseTimeout bounds how long Close waits for queued events.
const sinkCloseTimeout = 10 * time.Second

// errPermanent marks a delivery failure that retrying cannot fix.
var errPermanent = errors.New("rejected by the receiver")

// queueSink is a bounded queue drained by one goroutine calling deliver.
type queueSink struct {
	name     string
	q        chan *Record
	deliver  func(ctx context.Context, r *Record) error
	retries  int
	backoff  time.Duration
	failures func()
	stop     chan struct{} // no more events; deliver what is queued
	abort    chan struct{} // Close's deadline passed; stop retrying
	done     chan struct{}
	once     sync.Once
	abortOne sync.Once
	mu       sync.RWMutex
	closed   bool
}

func newQueueSink(name string, size, retries int, backoff time.Duration, deliver func(context.Context, *Record) error) *queueSink {
	if size <= 0 {
		size = 1024
	}
	s := &queueSink{name: name, q: make(chan *Record, size), deliver: deliver, retries: retries, backoff: backoff,
		stop: make(chan struct{}), abort: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *queueSink) Name() string { return s.name }

func (s *queueSink) Enqueue(r *Record) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return false
	}
	select {
	case s.q <- r:
		return true
	default:
		return false
	}
}

func (s *queueSink) run() {
	defer close(s.done)
	for {
		select {
		case r := <-s.q:
			s.send(r)
		case <-s.stop:
			for {
				select {
				case r := <-s.q:
					s.send(r)
					continue
				default:
				}
				return
			}
		}
	}
}

func (s *queueSink) send(r *Record) {
	wait := s.backoff
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.deliver(ctx, r)
		cancel()
		if err == nil {
			return
		}
		if attempt >= s.retries || errors.Is(err, errPermanent) {
			if s.failures != nil {
				s.failures()
			}
			return
		}
		select {
		case <-time.After(wait):
		case <-s.abort:
			// Close gave up waiting: count the loss, do not linger.
			if s.failures != nil {
				s.failures()
			}
			return
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func (s *queueSink) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
	})
	select {
	case <-s.done:
		return nil
	case <-time.After(sinkCloseTimeout):
		s.abortOne.Do(func() { close(s.abort) })
		return fmt.Errorf("audit: sink %s: gave up delivering queued events", s.name)
	}
}

// NewJSONLinesSink writes each event as one line of JSON (the AuditEvent)
// to w, for log shippers reading stdout. queue bounds the events waiting.
func NewJSONLinesSink(w io.Writer, queue int) Sink {
	var mu sync.Mutex
	return newQueueSink("jsonl", queue, 0, 0, func(_ context.Context, r *Record) error {
		mu.Lock()
		defer mu.Unlock()
		line := make([]byte, 0, len(r.Body)+1)
		line = append(append(line, r.Body...), '\n')
		_, err := w.Write(line)
		return err
	})
}

// NewFHIRSink POSTs each event to baseURL + "/AuditEvent" (an external FHIR
// audit repository, the ITI-20 FHIR feed), retrying up to retries times
// with exponential backoff from backoff. A 4xx answer other than 408/429
// is not retried. client nil means a client with a 10 s timeout.
func NewFHIRSink(baseURL string, client *http.Client, queue, retries int, backoff time.Duration) Sink {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if backoff <= 0 {
		backoff = 500 * time.Millisecond
	}
	target := strings.TrimRight(baseURL, "/") + "/AuditEvent"
	return newQueueSink("fhir", queue, retries, backoff, func(ctx context.Context, r *Record) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(r.Body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", fhir.ContentTypeJSON)
		req.Header.Set("Accept", "application/fhir+json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode < 300:
			return nil
		case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != 408 && resp.StatusCode != 429:
			return fmt.Errorf("%w: %s", errPermanent, resp.Status)
		}
		return fmt.Errorf("audit repository: %s", resp.Status)
	})
}
