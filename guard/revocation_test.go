package guard

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// revocationBound is the target: a revocation reaches every replica
// within a second.
const revocationBound = time.Second

func TestRevocationReachesEveryInstance(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		gs := b.guards(t, 3, Options{})

		for i, g := range gs {
			wantReason(t, "before revoke", g.CheckRevoked(ctx, "agent-a", "jti-1"), "")
			_ = i
		}
		if err := gs[0].Revoke(ctx, Revocation{Agent: "agent-a", Reason: "runaway loop", By: "admin-1"}); err != nil {
			t.Fatal(err)
		}
		// The revoking replica refuses at once.
		wantReason(t, "revoking instance", gs[0].CheckRevoked(ctx, "agent-a", ""), fhir.ReasonAgentRevoked)
		waitAll(t, gs, "agent revocation", func(g *Guard) bool {
			return fhir.ReasonOf(g.CheckRevoked(ctx, "agent-a", "jti-1")) == fhir.ReasonAgentRevoked
		})
		for _, g := range gs {
			wantReason(t, "other agent", g.CheckRevoked(ctx, "agent-b", "jti-9"), "")
		}

		// One token of agent-b.
		if err := gs[1].Revoke(ctx, Revocation{Agent: "agent-b", JTI: "jti-9", Reason: "leaked"}); err != nil {
			t.Fatal(err)
		}
		waitAll(t, gs, "token revocation", func(g *Guard) bool {
			return fhir.ReasonOf(g.CheckRevoked(ctx, "agent-b", "jti-9")) == fhir.ReasonTokenRevoked
		})
		for _, g := range gs {
			wantReason(t, "other token", g.CheckRevoked(ctx, "agent-b", "jti-10"), "")
			wantReason(t, "same jti, other agent", g.CheckRevoked(ctx, "agent-c", "jti-9"), "")
		}

		rs, err := gs[2].Revocations(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 2 || rs[0].Agent != "agent-a" || rs[0].JTI != "" || rs[0].Reason != "runaway loop" || rs[0].By != "admin-1" || rs[0].At.IsZero() ||
			rs[1].Agent != "agent-b" || rs[1].JTI != "jti-9" {
			t.Fatalf("Revocations = %+v", rs)
		}

		// Restoring the agent lifts it everywhere; the token stays revoked.
		if err := gs[2].Restore(ctx, "agent-a", ""); err != nil {
			t.Fatal(err)
		}
		waitAll(t, gs, "restore", func(g *Guard) bool { return g.CheckRevoked(ctx, "agent-a", "jti-1") == nil })
		if err := gs[0].Restore(ctx, "agent-b", ""); err != nil { // not revoked as an agent: no-op
			t.Fatal(err)
		}
		for _, g := range gs {
			wantReason(t, "token after agent restore", g.CheckRevoked(ctx, "agent-b", "jti-9"), fhir.ReasonTokenRevoked)
		}
		if err := gs[0].Restore(ctx, "agent-b", "jti-9"); err != nil {
			t.Fatal(err)
		}
		waitAll(t, gs, "token restore", func(g *Guard) bool { return g.CheckRevoked(ctx, "agent-b", "jti-9") == nil })
		if rs, _ := gs[1].Revocations(ctx); len(rs) != 0 {
			t.Fatalf("Revocations after restore = %+v", rs)
		}
	})
}

// waitAll waits until cond holds on every guard, polling them concurrently,
// and fails if any takes longer than revocationBound.
func waitAll(t *testing.T, gs []*Guard, what string, cond func(*Guard) bool) {
	t.Helper()
	var wg sync.WaitGroup
	took := make([]time.Duration, len(gs))
	start := time.Now()
	for i, g := range gs {
		wg.Go(func() {
			for !cond(g) && time.Since(start) < 3*revocationBound {
				time.Sleep(5 * time.Millisecond)
			}
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	t.Logf("%s reached %d instance(s) after %v", what, len(gs), slices.Max(took).Round(time.Millisecond))
	for i, d := range took {
		if d > revocationBound {
			t.Fatalf("%s reached instance %d after %v, bound %v", what, i, d, revocationBound)
		}
	}
}

func TestRevokeValidates(t *testing.T) {
	g := newGuard(t, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		r    Revocation
	}{
		{"no agent", Revocation{}},
		{"control char", Revocation{Agent: "a\nb"}},
		{"long jti", Revocation{Agent: "a", JTI: string(make([]byte, maxIDLen+1))}},
	} {
		if err := g.Revoke(ctx, tc.r); err == nil {
			t.Errorf("%s: Revoke accepted %+v", tc.name, tc.r)
		}
	}
	if err := g.Restore(ctx, "", ""); err == nil {
		t.Error("Restore accepted an empty agent")
	}
}

// An agent id with braces must not break the cluster hash tag, and the
// revocation field must tell {agent "a", jti "b"} from other splits.
func TestOddIDs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		gs := b.guards(t, 2, Options{})
		odd := `we}ird{"agent"\`
		if err := gs[0].Revoke(ctx, Revocation{Agent: odd, JTI: `x","y`}); err != nil {
			t.Fatal(err)
		}
		waitAll(t, gs, "odd revocation", func(g *Guard) bool {
			return fhir.ReasonOf(g.CheckRevoked(ctx, odd, `x","y`)) == fhir.ReasonTokenRevoked
		})
		wantReason(t, "other split", gs[1].CheckRevoked(ctx, `we}ird{"agent"\","x`, "y"), "")
		l := Limits{RequestsPerSecond: 1, Burst: 1}
		if _, err := gs[0].AllowRequest(ctx, odd, l); err != nil {
			t.Fatal(err)
		}
		_, err := gs[1].AllowRequest(ctx, odd, l)
		wantReason(t, "odd agent rate", err, fhir.ReasonRateLimited)
	})
}
