package audit

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// BenchmarkDurableEvents measures durable (committed, fsynced) events per
// second for each store, one writer at a time and with b.RunParallel
// writers, where group commit shares each fsync.
//
// The search variants record the event of a 60-Claim searchset with its 60
// included Patients (about 65 KB of JSON each), the shape that dominates
// the store's bytes under a search workload.
func BenchmarkDurableEvents(b *testing.B) {
	for _, k := range storeKinds {
		b.Run(k.name, func(b *testing.B) {
			benchDurable(b, k, agentAccess)
		})
		b.Run(k.name+"-search", func(b *testing.B) {
			benchDurable(b, k, func() *Access { return searchAccess(120, 60) })
		})
	}
}

func benchDurable(b *testing.B, k storeKind, access func() *Access) {
	opts := testOptions()
	opts.CheckpointEvery = 1000
	tl := openTestLog(b, k, "", opts)
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		a := access()
		for b.Loop() {
			if err := tl.Record(ctx, a); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(16) // 16 goroutines per CPU: concurrent requests
		b.RunParallel(func(pb *testing.PB) {
			a := access()
			for pb.Next() {
				if err := tl.Record(ctx, a); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkProxiedRequest measures the latency audit adds to a proxied
// request: the same reverse proxy to the same upstream, without audit and
// with the two-phase audit (Intent before forwarding, Complete after), in
// one run.
func BenchmarkProxiedRequest(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = io.WriteString(w, `{"resourceType":"Patient","id":"123"}`)
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	rp := httputil.NewSingleHostReverseProxy(u)

	plain := rp
	audited := func(l *Log) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := agentAccess()
			p, err := l.Intent(r.Context(), a)
			if err != nil {
				http.Error(w, "audit-unavailable", http.StatusServiceUnavailable)
				return
			}
			rp.ServeHTTP(w, r)
			_ = p.Complete(r.Context(), a)
		})
	}
	// serial: one request at a time, ns/op is the request latency.
	// parallel: 8 goroutines per CPU, ns/op is wall time per request at
	// that concurrency (the inverse of throughput).
	run := func(b *testing.B, h http.Handler) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		client := srv.Client()
		client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
		get := func() error {
			resp, err := client.Get(srv.URL + "/fhir/Patient/123")
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			return resp.Body.Close()
		}
		b.Run("serial", func(b *testing.B) {
			for b.Loop() {
				if err := get(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("parallel", func(b *testing.B) {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := get(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	b.Run("no-audit", func(b *testing.B) { run(b, plain) })
	for _, k := range storeKinds {
		b.Run("audit-"+k.name, func(b *testing.B) {
			opts := testOptions()
			opts.CheckpointEvery = 1000
			tl := openTestLog(b, k, "", opts)
			run(b, audited(tl.Log))
		})
	}
}
