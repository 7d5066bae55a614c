package guard

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// GCRA on a settable clock, spread over the instances: exact counts.
func TestRateLimitExact(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		clock := newFakeClock()
		gs := b.guards(t, 3, Options{Now: clock.Now})
		l := Limits{RequestsPerSecond: 2, Burst: 3}
		for i := range 3 {
			if _, err := gs[i].AllowRequest(ctx, "agent-a", l); err != nil {
				t.Fatalf("burst request %d: %v", i, err)
			}
		}
		retry, err := gs[0].AllowRequest(ctx, "agent-a", l)
		wantReason(t, "over burst", err, fhir.ReasonRateLimited)
		if retry < 499*time.Millisecond || retry > 501*time.Millisecond {
			t.Fatalf("retryAfter = %v, want 500ms", retry)
		}
		// Another agent has its own budget.
		if _, err := gs[1].AllowRequest(ctx, "agent-b", l); err != nil {
			t.Fatal(err)
		}
		clock.Add(500 * time.Millisecond)
		if _, err := gs[1].AllowRequest(ctx, "agent-a", l); err != nil {
			t.Fatalf("after one interval: %v", err)
		}
		_, err = gs[2].AllowRequest(ctx, "agent-a", l)
		wantReason(t, "interval spent", err, fhir.ReasonRateLimited)
		clock.Add(10 * time.Second) // a long pause refills the burst, no more
		for i := range 3 {
			if _, err := gs[i].AllowRequest(ctx, "agent-a", l); err != nil {
				t.Fatalf("refilled burst %d: %v", i, err)
			}
		}
		_, err = gs[0].AllowRequest(ctx, "agent-a", l)
		wantReason(t, "burst is the cap", err, fhir.ReasonRateLimited)
	})
}

// The real clock, concurrent callers on every instance: the sum admitted by
// all instances stays within burst + rate*elapsed.
func TestRateLimitHeldAcrossInstances(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		gs := b.guards(t, 3, Options{})
		const rate, burst = 40.0, 10
		l := Limits{RequestsPerSecond: rate, Burst: burst}
		var allowed, refused atomic.Int64
		var badRetry atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		start := time.Now()
		for _, g := range gs {
			for range 2 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						retry, err := g.AllowRequest(ctx, "agent-a", l)
						switch {
						case err == nil:
							allowed.Add(1)
						case fhir.ReasonOf(err) == fhir.ReasonRateLimited && retry > 0 && retry <= time.Second/rate+time.Millisecond:
							refused.Add(1)
						default:
							badRetry.Store(err.Error() + " retry=" + retry.String())
						}
						time.Sleep(time.Millisecond)
					}
				})
			}
		}
		time.Sleep(1500 * time.Millisecond)
		close(stop)
		wg.Wait()
		elapsed := time.Since(start)
		if v := badRetry.Load(); v != nil {
			t.Fatalf("unexpected answer: %v", v)
		}
		max := float64(burst) + rate*elapsed.Seconds() + 2
		got := allowed.Load()
		t.Logf("%s: allowed %d, refused %d in %v (bound %.1f)", b.name, got, refused.Load(), elapsed, max)
		if float64(got) > max {
			t.Fatalf("allowed %d requests in %v across instances, limit %.1f", got, elapsed, max)
		}
		if got < burst || refused.Load() == 0 {
			t.Fatalf("allowed %d, refused %d: the limiter neither admitted the burst nor refused", got, refused.Load())
		}
	})
}
