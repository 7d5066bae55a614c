package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

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
