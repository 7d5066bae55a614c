package guard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkGuard measures the guardrails' cost on a typical request (a
// revocation check, one rate-limit spend, one patient disclosed) against
// the same request without guardrails, in the same run. The request itself
// is a small in-process HTTP handler writing a FHIR resource, so "none" is
// the baseline the other two add to.
func BenchmarkGuard(b *testing.B) {
	ctx := context.Background()
	body := []byte(`{"resourceType":"Patient","id":"1","active":true}`)
	upstream := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = w.Write(body)
	})
	// Generous limits: the benchmark measures the checks, not refusals.
	l := Limits{RequestsPerSecond: 1e9, Burst: 1e9, PatientsPerHour: 1_000_000}
	patients := make([][]string, 100)
	for i := range patients {
		patients[i] = []string{"Patient/" + strconv.Itoa(i)}
	}

	run := func(b *testing.B, g *Guard) {
		req := httptest.NewRequest(http.MethodGet, "/fhir/Patient/1", nil)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if g != nil {
				if err := g.CheckRevoked(ctx, "agent-bench", "jti-1"); err != nil {
					b.Fatal(err)
				}
				if _, err := g.AllowRequest(ctx, "agent-bench", l); err != nil {
					b.Fatal(err)
				}
			}
			w := httptest.NewRecorder()
			upstream.ServeHTTP(w, req)
			if g != nil {
				if err := g.AdmitPatients(ctx, "agent-bench", patients[i%len(patients)], l); err != nil {
					b.Fatal(err)
				}
			}
			i++
		}
	}

	b.Run("none", func(b *testing.B) { run(b, nil) })
	b.Run("memory", func(b *testing.B) { run(b, newGuard(b, Options{})) })
	b.Run("statefile", func(b *testing.B) {
		run(b, newGuard(b, Options{StateFile: filepath.Join(b.TempDir(), "revocations.json")}))
	})
	b.Run("redis", func(b *testing.B) {
		c, prefix := sharedRedis(b)
		run(b, newGuard(b, Options{Redis: c, KeyPrefix: prefix}))
	})
}

// BenchmarkGuardSteps isolates each guard call on each backend, without the
// request around it.
func BenchmarkGuardSteps(b *testing.B) {
	ctx := context.Background()
	l := Limits{RequestsPerSecond: 1e9, Burst: 1e9, PatientsPerHour: 1_000_000}
	patient := []string{"Patient/1"}
	steps := []struct {
		name string
		call func(g *Guard) error
	}{
		{"CheckRevoked", func(g *Guard) error { return g.CheckRevoked(ctx, "agent-bench", "jti-1") }},
		{"AllowRequest", func(g *Guard) error { _, err := g.AllowRequest(ctx, "agent-bench", l); return err }},
		{"AdmitPatients", func(g *Guard) error { return g.AdmitPatients(ctx, "agent-bench", patient, l) }},
	}
	for _, be := range []struct {
		name string
		new  func(b *testing.B) *Guard
	}{
		{"memory", func(b *testing.B) *Guard { return newGuard(b, Options{}) }},
		{"statefile", func(b *testing.B) *Guard {
			return newGuard(b, Options{StateFile: filepath.Join(b.TempDir(), "revocations.json")})
		}},
		{"redis", func(b *testing.B) *Guard {
			c, prefix := sharedRedis(b)
			return newGuard(b, Options{Redis: c, KeyPrefix: prefix})
		}},
	} {
		for _, s := range steps {
			b.Run(be.name+"/"+s.name, func(b *testing.B) {
				g := be.new(b)
				b.ReportAllocs()
				for b.Loop() {
					if err := s.call(g); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkStateFileRevoke is the cost of one Revoke plus one Restore with a
// StateFile: two locked read-modify-writes, each with two fsyncs, over a
// file that already holds 100 revocations. It is an admin action, not on
// the request path (except once per agent with AutoRevokeOnBudget).
func BenchmarkStateFileRevoke(b *testing.B) {
	ctx := context.Background()
	g := newGuard(b, Options{StateFile: filepath.Join(b.TempDir(), "revocations.json")})
	for i := range 100 {
		if err := g.Revoke(ctx, Revocation{Agent: "agent-" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Revoke(ctx, Revocation{Agent: "agent-bench"}); err != nil {
			b.Fatal(err)
		}
		if err := g.Restore(ctx, "agent-bench", ""); err != nil {
			b.Fatal(err)
		}
	}
}
