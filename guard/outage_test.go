package guard

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fhirwall/fhirwall/fhir"
)

// TestRedisOutage stops a private Redis mid-test and restarts it on the same
// append-only file, and checks the documented behaviour:
//
//   - a revoked agent never passes, whatever the state of Redis;
//   - a healthy agent works through the blip while the local revocation set
//     is younger than LocalCacheTTL, then is refused with ReasonUnavailable,
//     and works again once Redis is back;
//   - limits fail closed, except the rate limit with FailOpenLimits;
//   - Ready reports the outage;
//   - revocations survive the restart (Redis persisted them), so a replica
//     started afterwards still refuses the agent.
func TestRedisOutage(t *testing.T) {
	srv := startPrivateRedis(t, "--appendonly", "yes", "--appendfsync", "always")
	ctx := context.Background()
	client := func() redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: srv.addr(), DialTimeout: 100 * time.Millisecond,
			ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	const ttl = 2 * time.Second
	opts := Options{LocalCacheTTL: ttl, RevocationPoll: 100 * time.Millisecond, Timeout: 300 * time.Millisecond}
	g1 := newGuard(t, withRedis(opts, client()))
	g2 := newGuard(t, withRedis(opts, client()))
	openOpts := withRedis(opts, client())
	openOpts.FailOpenLimits = true
	gOpen := newGuard(t, openOpts)
	l := Limits{RequestsPerSecond: 1000, Burst: 1000, PatientsPerHour: 100, BulkCallsPerDay: 10}

	if err := g1.Revoke(ctx, Revocation{Agent: "bad", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	waitAll(t, []*Guard{g1, g2, gOpen}, "revocation", func(g *Guard) bool {
		return fhir.ReasonOf(g.CheckRevoked(ctx, "bad", "")) == fhir.ReasonAgentRevoked
	})
	for _, g := range []*Guard{g1, g2} {
		wantReason(t, "healthy before outage", g.CheckRevoked(ctx, "good", ""), "")
		if err := g.Ready(ctx); err != nil {
			t.Fatalf("Ready before outage: %v", err)
		}
	}

	// For the whole outage and restart, the revoked agent is checked
	// continuously on every replica: it must never pass.
	var passed atomic.Int64
	watchDone := make(chan struct{})
	var watch sync.WaitGroup
	for _, g := range []*Guard{g1, g2, gOpen} {
		watch.Go(func() {
			for {
				select {
				case <-watchDone:
					return
				default:
				}
				if g.CheckRevoked(ctx, "bad", "") == nil {
					passed.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	t.Cleanup(func() {
		close(watchDone)
		watch.Wait()
		if n := passed.Load(); n > 0 {
			t.Errorf("the revoked agent passed %d checks during the outage", n)
		}
	})

	stopAsked := time.Now()
	srv.stop()
	stopped := time.Now()

	// Inside the cache window: healthy agents pass, the revoked one does not,
	// limits that need Redis fail closed.
	wantReason(t, "revoked during outage", g2.CheckRevoked(ctx, "bad", ""), fhir.ReasonAgentRevoked)
	wantReason(t, "healthy within cache window", g2.CheckRevoked(ctx, "good", ""), "")
	if since := time.Since(stopped); since > ttl/2 {
		t.Logf("warning: the machine is slow (%v since stop); cache-window checks may be marginal", since)
	}
	_, err := g2.AllowRequest(ctx, "good", l)
	wantReason(t, "rate limit fails closed", err, ReasonUnavailable)
	if !errors.Is(err, ErrStateUnavailable) {
		t.Fatalf("rate-limit refusal %v does not wrap ErrStateUnavailable", err)
	}
	wantReason(t, "patient budget fails closed", g2.AdmitPatients(ctx, "good", []string{"Patient/1"}, l), ReasonUnavailable)
	if full, err := g2.PatientBudgetExhausted(ctx, "good", l); !full || err == nil {
		t.Fatalf("PatientBudgetExhausted during outage = %v, %v; want true and an error", full, err)
	}
	wantReason(t, "bulk cap fails closed", g2.CountBulkCall(ctx, "good", l), ReasonUnavailable)
	if _, err := gOpen.AllowRequest(ctx, "good", l); err != nil {
		t.Fatalf("FailOpenLimits: %v", err)
	}
	if _, err := gOpen.AllowRequest(ctx, "tight", Limits{RequestsPerSecond: 1, Burst: 1}); err != nil {
		t.Fatalf("FailOpenLimits, first request of a tight limit: %v", err)
	}
	_, err = gOpen.AllowRequest(ctx, "tight", Limits{RequestsPerSecond: 1, Burst: 1})
	wantReason(t, "FailOpenLimits still limits per replica", err, fhir.ReasonRateLimited)
	if err := g1.Revoke(ctx, Revocation{Agent: "other"}); err == nil {
		t.Fatal("Revoke succeeded with Redis down")
	}
	if err := g2.Ready(ctx); err == nil {
		t.Fatal("Ready with Redis down")
	}
	if since := time.Since(stopped); since > ttl {
		t.Fatalf("the calls during the outage took %v: they must fail fast, not wait for Redis", since)
	}

	// Beyond the cache window: every agent is refused, the revoked one still
	// as revoked.
	took := waitFor(t, ttl+2*time.Second, "healthy agent refused after the cache window", func() bool {
		return fhir.ReasonOf(g2.CheckRevoked(ctx, "good", "")) == ReasonUnavailable
	})
	t.Logf("healthy agent refused %v after Redis stopped (cache TTL %v)", time.Since(stopped).Round(time.Millisecond), ttl)
	// The last good sync started at most one poll period (plus its own
	// latency) before the stop was asked for; the refusal must not come
	// before the cache TTL counted from there.
	if since := time.Since(stopAsked); since < ttl-opts.RevocationPoll-200*time.Millisecond {
		t.Fatalf("refused %v after the stop was asked (waited %v), before the cache TTL %v", since, took, ttl)
	}
	wantReason(t, "revoked beyond window", g2.CheckRevoked(ctx, "bad", ""), fhir.ReasonAgentRevoked)
	if age := metricValue(t, g2, "fhirwall_guard_revocation_cache_age_seconds", nil); age < ttl.Seconds() {
		t.Fatalf("cache age gauge %v, want > %v", age, ttl.Seconds())
	}
	if n := metricValue(t, g2, "fhirwall_guard_refusals_total", map[string]string{"reason": string(ReasonUnavailable)}); n < 1 {
		t.Fatalf("unavailable refusals counter = %v", n)
	}
	if up := metricValue(t, g2, "fhirwall_guard_redis_up", nil); up != 0 {
		t.Fatalf("redis_up gauge = %v during the outage", up)
	}
	if n := metricValue(t, g2, "fhirwall_guard_redis_errors_total", map[string]string{"op": "sync"}); n < 1 {
		t.Fatalf("redis sync errors counter = %v", n)
	}

	// Back on the same data directory: the revocation survived.
	srv.start()
	waitFor(t, 5*time.Second, "healthy agent works after restart", func() bool {
		return g2.CheckRevoked(ctx, "good", "") == nil
	})
	wantReason(t, "revoked after restart", g2.CheckRevoked(ctx, "bad", ""), fhir.ReasonAgentRevoked)
	waitFor(t, 5*time.Second, "Ready after restart", func() bool { return g1.Ready(ctx) == nil })
	if _, err := g1.AllowRequest(ctx, "good", l); err != nil {
		t.Fatalf("rate limit after restart: %v", err)
	}
	if err := g1.AdmitPatients(ctx, "good", []string{"Patient/1"}, l); err != nil {
		t.Fatalf("patient budget after restart: %v", err)
	}
	fresh := newGuard(t, withRedis(opts, client()))
	wantReason(t, "new replica after restart", fresh.CheckRevoked(ctx, "bad", ""), fhir.ReasonAgentRevoked)
	wantReason(t, "new replica, healthy agent", fresh.CheckRevoked(ctx, "good", ""), "")
}

// A Redis restarted without persistence comes back empty; the replicas
// publish the revocations they know again, so the kill switch holds.
func TestRevocationsRepublishedAfterDataLoss(t *testing.T) {
	srv := startPrivateRedis(t) // no persistence
	ctx := context.Background()
	opts := Options{RevocationPoll: 50 * time.Millisecond, Timeout: 300 * time.Millisecond}
	newClient := func() redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: srv.addr(), DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	g1 := newGuard(t, withRedis(opts, newClient()))
	g2 := newGuard(t, withRedis(opts, newClient()))
	if err := g1.Revoke(ctx, Revocation{Agent: "bad", JTI: "t1", Reason: "leaked", By: "admin"}); err != nil {
		t.Fatal(err)
	}
	if err := g1.Revoke(ctx, Revocation{Agent: "worse"}); err != nil {
		t.Fatal(err)
	}
	waitAll(t, []*Guard{g1, g2}, "revocation", func(g *Guard) bool { return len(g.rev.Load().tokens) == 1 && len(g.rev.Load().agents) == 1 })

	srv.stop()
	srv.start() // empty
	waitFor(t, 5*time.Second, "revocations republished", func() bool {
		rs, err := g1.Revocations(ctx)
		return err == nil && len(rs) == 2
	})
	fresh := newGuard(t, withRedis(opts, newClient()))
	wantReason(t, "token on a new replica", fresh.CheckRevoked(ctx, "bad", "t1"), fhir.ReasonTokenRevoked)
	wantReason(t, "agent on a new replica", fresh.CheckRevoked(ctx, "worse", ""), fhir.ReasonAgentRevoked)
	rs, _ := fresh.Revocations(ctx)
	if rs[0].Reason != "leaked" || rs[0].By != "admin" {
		t.Fatalf("republished revocation lost its metadata: %+v", rs[0])
	}
	if n := metricValue(t, g1, "fhirwall_guard_revocations_republished_total", nil) + metricValue(t, g2, "fhirwall_guard_revocations_republished_total", nil); n < 1 {
		t.Fatalf("republished counter = %v", n)
	}
	// A restore after the republication sticks.
	if err := fresh.Restore(ctx, "worse", ""); err != nil {
		t.Fatal(err)
	}
	waitAll(t, []*Guard{g1, g2, fresh}, "restore", func(g *Guard) bool { return g.CheckRevoked(ctx, "worse", "") == nil })
}

// A replica must not start without knowing who is revoked.
func TestNewFailsWithoutRedis(t *testing.T) {
	srv := startPrivateRedis(t)
	srv.stop()
	c := redis.NewClient(&redis.Options{Addr: srv.addr(), DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer func() { _ = c.Close() }()
	if g, err := New(context.Background(), Options{Redis: c, Timeout: 200 * time.Millisecond}); err == nil {
		_ = g.Close()
		t.Fatal("New succeeded with Redis down")
	}
}

func withRedis(o Options, c redis.UniversalClient) Options {
	o.Redis = c
	return o
}
