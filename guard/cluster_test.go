package guard

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fhirwall/fhirwall/fhir"
)

// TestRedisCluster runs the guard on a Redis in cluster mode through a
// ClusterClient. A one-node cluster still refuses multi-key commands and
// scripts whose keys span several slots (CROSSSLOT), so this checks that
// every script and transaction keeps to one slot through the hash tags.
func TestRedisCluster(t *testing.T) {
	srv := startPrivateRedis(t, "--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(t.TempDir(), "nodes.conf"))
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: srv.addr()})
	defer func() { _ = admin.Close() }()
	if err := admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err(); err != nil {
		t.Fatalf("assigning slots: %v", err)
	}
	waitFor(t, 10*time.Second, "cluster state ok", func() bool {
		info, err := admin.ClusterInfo(ctx).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	})

	var gs []*Guard
	for range 2 {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{srv.addr()}})
		t.Cleanup(func() { _ = c.Close() })
		gs = append(gs, newGuard(t, Options{Redis: c, RevocationPoll: 50 * time.Millisecond}))
	}
	agent := "agent{with}braces"
	if err := gs[0].Revoke(ctx, Revocation{Agent: agent, JTI: "t1"}); err != nil {
		t.Fatal(err)
	}
	waitAll(t, gs, "token revocation", func(g *Guard) bool {
		return fhir.ReasonOf(g.CheckRevoked(ctx, agent, "t1")) == fhir.ReasonTokenRevoked
	})
	if err := gs[1].Restore(ctx, agent, "t1"); err != nil {
		t.Fatal(err)
	}
	if rs, err := gs[0].Revocations(ctx); err != nil || len(rs) != 0 {
		t.Fatalf("Revocations = %v, %v", rs, err)
	}
	l := Limits{RequestsPerSecond: 1, Burst: 1, PatientsPerHour: 1, BulkCallsPerDay: 1}
	if _, err := gs[0].AllowRequest(ctx, agent, l); err != nil {
		t.Fatal(err)
	}
	_, err := gs[1].AllowRequest(ctx, agent, l)
	wantReason(t, "rate", err, fhir.ReasonRateLimited)
	wantReason(t, "first patient", gs[0].AdmitPatients(ctx, agent, []string{"Patient/1"}, l), "")
	wantReason(t, "second patient", gs[1].AdmitPatients(ctx, agent, []string{"Patient/1", "Patient/2"}, l), fhir.ReasonPatientBudget)
	if full, err := gs[1].PatientBudgetExhausted(ctx, agent, l); err != nil || !full {
		t.Fatalf("PatientBudgetExhausted = %v, %v", full, err)
	}
	wantReason(t, "bulk", gs[0].CountBulkCall(ctx, agent, l), "")
	wantReason(t, "bulk again", gs[1].CountBulkCall(ctx, agent, l), fhir.ReasonRateLimited)
	for _, g := range gs {
		if err := g.Ready(ctx); err != nil {
			t.Fatalf("Ready: %v", err)
		}
	}
}
