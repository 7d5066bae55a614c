package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	goruntime "runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirwall/fhirwall/internal/fhirsample"
)

// BenchmarkSearchset is BenchmarkProxy's fhirwall/cached case on a ~200 KB
// searchset (Patients with their Observations): the per-entry costs.
func BenchmarkSearchset(b *testing.B) {
	var body bytes.Buffer
	if err := fhirsample.WriteSearchset(&body, 200, 1); err != nil {
		b.Fatal(err)
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = io.Copy(w, bytes.NewReader(body.Bytes()))
	}))
	defer upstream.Close()
	gw, token := benchGateway(b, upstream.URL, 0)
	b.ReportAllocs()
	b.SetBytes(int64(body.Len()))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("GET", "http://gw.test/fhir/Patient?_count=200", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d: %.300s", w.Code, w.Body)
		}
	}
}

// BenchmarkLargeSearchset streams a generated searchset of FHIRWALL_BENCH_MB
// megabytes (default 64) through the whole gateway (a real listener, a
// real client) and reports, besides MB/s, the peak heap in use sampled
// every 20 ms: it must not grow with the size of the Bundle.
//
//	FHIRWALL_BENCH_MB=1024 go test ./proxy -run '^$' -bench LargeSearchset -benchtime 1x
func BenchmarkLargeSearchset(b *testing.B) {
	mb := 64
	if v, err := strconv.Atoi(os.Getenv("FHIRWALL_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	entries := mb * 1000 // about 1 KB an entry
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		_ = fhirsample.WriteSearchset(w, entries, 1)
	}))
	defer upstream.Close()
	gw, token := benchGateway(b, upstream.URL, 0)
	srv := httptest.NewServer(gw)
	defer srv.Close()

	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var ms goruntime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				goruntime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	var total int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequest("GET", srv.URL+"/fhir/Patient?_revinclude=Observation:subject", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			b.Fatalf("status %d after %d bytes: %v", resp.StatusCode, n, err)
		}
		total += n
	}
	b.StopTimer()
	gw.completions.Wait()
	close(stop)
	b.SetBytes(total / int64(b.N))
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
}
