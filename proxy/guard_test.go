package proxy

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fhirwall/fhirwall/guard"
)

func TestGuardrailsThroughTheGateway(t *testing.T) {
	h := newHarness(t)
	tok := h.token("agent-limited", "system/Patient.rs")
	read := func(i int) (int, string) {
		resp := h.do("GET", "/fhir/Patient/"+h.patient(i), tok, nil)
		m, _ := readJSON(t, resp)
		if resp.StatusCode == 200 {
			return 200, ""
		}
		return resp.StatusCode, outcomeReason(t, m)
	}
	// Two distinct patients per hour: the third new one is refused, the
	// ones already seen still pass.
	if code, r := read(0); code != 200 {
		t.Fatalf("first patient: %d %s", code, r)
	}
	if code, r := read(1); code != 200 {
		t.Fatalf("second patient: %d %s", code, r)
	}
	if code, r := read(2); code != 429 || r != "patient-budget" {
		t.Fatalf("third patient: %d %s, want 429 patient-budget", code, r)
	}
	// A patient already seen still passes (4th request of a burst of 4).
	if code, r := read(0); code != 200 {
		t.Fatalf("a patient already seen: %d %s", code, r)
	}
	// The burst is spent (the refusal counted too): the next request is
	// rate limited, with Retry-After.
	resp := h.do("GET", "/fhir/Patient/"+h.patient(0), tok, nil)
	m, _ := readJSON(t, resp)
	if resp.StatusCode != 429 || outcomeReason(t, m) != "rate-limited" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the rate: %d %v Retry-After=%q", resp.StatusCode, m["resourceType"], resp.Header.Get("Retry-After"))
	}
}

// TestReplicasShareRevocationsThroughRedis runs two gateways on one Redis:
// an agent revoked through one is refused by the other within a second.
func TestReplicasShareRevocationsThroughRedis(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	if err := client.Ping(context.Background()).Err(); err != nil {
		if os.Getenv("FHIRWALL_REQUIRE_REDIS") != "" {
			t.Fatalf("redis: %v", err)
		}
		t.Skipf("no Redis at 127.0.0.1:6379 (%v); set FHIRWALL_REQUIRE_REDIS to make this fatal", err)
	}
	prefix := fmt.Sprintf("fhirwall-proxytest:%d:", time.Now().UnixNano())
	t.Cleanup(func() {
		keys, _ := client.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			client.Del(context.Background(), keys...)
		}
	})
	a := newHarnessWithGuard(t, client, prefix)
	b := newHarnessWithGuard(t, client, prefix)
	agentTok := func(h *harness) string { return h.token("agent-echo", "system/Patient.rs") }
	if resp := b.do("GET", "/echo/Patient/p1", agentTok(b), nil); resp.StatusCode != 200 {
		t.Fatalf("replica b before revocation: %d", resp.StatusCode)
	}
	resp := a.do("POST", "/admin/revoke", a.token("admin-1", "x"), strings.NewReader(`{"agent":"agent-echo","reason":"replica test"}`))
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("revoke on a: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(time.Second)
	for {
		resp := b.do("GET", "/echo/Patient/p1", agentTok(b), nil)
		m, _ := readJSON(t, resp)
		if resp.StatusCode == 403 && outcomeReason(t, m) == "agent-revoked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica b still lets the revoked agent through after 1s: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newHarnessWithGuard is a harness whose guard state lives in Redis.
func newHarnessWithGuard(t *testing.T, client *redis.Client, prefix string) *harness {
	t.Helper()
	g, err := guard.New(context.Background(), guard.Options{Redis: client, KeyPrefix: prefix})
	must(t, err)
	return newHarnessOpts(t, g)
}
