package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fhirwall/fhirwall/audit"
	"github.com/fhirwall/fhirwall/guard"
	"github.com/fhirwall/fhirwall/policy"
)

// patient2K is a realistic 2 KB Patient.
var patient2K = func() string {
	var b strings.Builder
	b.WriteString(`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1"},"active":true,"name":[{"family":"Bench","given":["Mark"]}],"telecom":[`)
	for i := 0; i < 20; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"system":"phone","value":"555-01%02d","use":"home"}`, i)
	}
	b.WriteString(`],"address":[{"line":["1 Bench Street"],"city":"Testville","postalCode":"97000"}],"birthDate":"1970-01-01"}`)
	return b.String()
}()

// BenchmarkProxy reports what fhirwall adds per request against a plain
// httputil.ReverseProxy, in the same run, on a 2 KB Patient read:
//
//   - plain: ReverseProxy with 64 KiB buffers, nothing else;
//   - fhirwall/cached: the whole pipeline with the verified-token cache;
//   - fhirwall/cold: the same with every token verified (ES256).
//
// cold minus cached is the cost of one signature verification; cached
// minus plain is the rest of the pipeline (classify, decide, mask, audit
// intent and completion). The audit store is placed on tmpfs when
// /dev/shm exists, so the benchmark measures the gateway rather than the
// disk's fsync latency (audit's own benchmarks measure durable writes).
func BenchmarkProxy(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = io.WriteString(w, patient2K)
	}))
	defer upstream.Close()
	target, _ := url.Parse(upstream.URL)

	b.Run("plain", func(b *testing.B) {
		rp := &httputil.ReverseProxy{
			Rewrite:    func(pr *httputil.ProxyRequest) { pr.SetURL(target); pr.SetXForwarded() },
			BufferPool: bufferPool{},
			Transport:  newTransport(policy.TimeoutsConfig{}),
		}
		runProxyBench(b, rp, "")
	})
	for _, tc := range []struct {
		name  string
		cache int
	}{{"fhirwall/cached", 0}, {"fhirwall/cold", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			gw, token := benchGateway(b, upstream.URL, tc.cache)
			runProxyBench(b, gw, token)
		})
	}
}

func runProxyBench(b *testing.B, h http.Handler, token string) {
	b.ReportAllocs()
	b.SetBytes(int64(len(patient2K)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("GET", "http://gw.test/fhir/Patient/p1", nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}

func benchGateway(b *testing.B, upstream string, cacheSize int) (*Gateway, string) {
	dir := b.TempDir()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "fhirwall-bench"); err == nil {
			dir = d
			b.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	keyFile := filepath.Join(dir, "issuer.pem")
	if err := policy.GenerateDevKey(keyFile); err != nil {
		b.Fatal(err)
	}
	key, err := policy.LoadSigningKey(keyFile)
	if err != nil {
		b.Fatal(err)
	}
	jwks, _ := policy.PublicJWKS(key)
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o644); err != nil {
		b.Fatal(err)
	}
	cfgText := fmt.Sprintf(`
public_base_url: http://gw.test
auth:
  issuers:
    - issuer: https://idp.test
      jwks_file: jwks.json
      audiences: [http://gw.test/fhir]
      algorithms: [ES256]
agents:
  - id: bench
    roles: [reader]
roles:
  reader:
    scopes: [system/Patient.rs, system/Observation.rs]
    masks: [contact]
masks:
  contact: [Patient.telecom]
routes:
  - name: ehr
    prefix: /fhir
    kind: fhir
    upstream: %s/fhir
audit:
  store: sqlite://audit.db
`, upstream)
	file := filepath.Join(dir, "fhirwall.yaml")
	if err := os.WriteFile(file, []byte(cfgText), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg, err := policy.Load(file)
	if err != nil {
		b.Fatal(err)
	}
	log, err := audit.Open(context.Background(), "sqlite://"+filepath.Join(dir, "audit.db"), audit.Options{Source: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { log.Close() })
	g, _ := guard.New(context.Background(), guard.Options{})
	b.Cleanup(func() { g.Close() })
	gw, err := New(context.Background(), cfg, Deps{Audit: log, Guard: g, TokenCacheSize: cacheSize})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(gw.Close)
	tok, err := policy.MintDevToken(key, policy.DevToken{Issuer: "https://idp.test", Audience: "http://gw.test/fhir", Agent: "bench", Scopes: []string{"system/Patient.rs", "system/Observation.rs"}})
	if err != nil {
		b.Fatal(err)
	}
	return gw, tok
}
