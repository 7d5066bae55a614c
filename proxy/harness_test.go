package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/fhirwall/fhirwall/audit"
	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/guard"
	"github.com/fhirwall/fhirwall/internal/fhirsample"
	"github.com/fhirwall/fhirwall/policy"
)

// testConfig is the gateway configuration the proxy tests run under. The
// template fields are filled by newHarness.
const testConfig = `
listen: 127.0.0.1:0
public_base_url: {{.Public}}
auth:
  issuers:
    - issuer: https://idp.test
      jwks_file: jwks.json
      audiences: [{{.Public}}/fhir]
      algorithms: [ES256]
agents:
  - id: agent-billing-07
    roles: [billing]
  - id: agent-triage-01
    roles: [triage]
  - id: agent-echo
    roles: [echo]
  - id: auditor-1
    roles: [auditor]
  - id: agent-limited
    roles: [limited, billing]
  - id: admin-1
    roles: [admin]
roles:
  billing:
    scopes: [system/Claim.rs, system/Coverage.rs, system/Patient.rs]
    masks: [hide-diagnosis, contact-minimum]
  triage:
    scopes: [patient/Patient.rs, patient/Observation.cruds, patient/Encounter.rs, patient/Condition.rs]
  echo:
    scopes: [system/Patient.rs, system/Patient.c, "system/*.rs"]
  auditor:
    scopes: [system/AuditEvent.rs]
  limited:
    scopes: [system/Patient.rs]
    limits: {requests_per_second: 0.1, burst: 4, patients_per_hour: 2}
  admin:
    admin: true
scope_map:
  billing.read: [system/Claim.rs]
masks:
  hide-diagnosis: [Claim.diagnosis]
  contact-minimum:
    - Patient.telecom
    - path: Patient.birthDate
      action: generalize
routes:
  - name: ehr
    prefix: /fhir
    kind: fhir
    upstream: {{.Upstream}}/fhir
  - name: shadow
    prefix: /shadow
    kind: fhir
    enforce: false
    upstream: {{.Upstream}}/fhir
  - name: echo
    prefix: /echo
    kind: fhir
    upstream: {{.Echo}}/base
    upstream_auth:
      bearer_token_file: upstream.token
  - name: billing-api
    prefix: /api/billing
    kind: rest
    upstream: {{.Echo}}/rest
    rules:
      - match: GET /claims/{id}
        scopes: [billing.read]
        masks: [diagnosis]
audit:
  store: sqlite://audit.db
`

// harness is a gateway in front of the sample FHIR server and an echo
// upstream that records what it receives.
type harness struct {
	t        *testing.T
	dir      string
	key      jwk.Key
	gw       *Gateway
	srv      *httptest.Server
	sample   *fhirsample.Server
	upstream *httptest.Server
	echo     *echoUpstream
	echoBase string
	log      *audit.Log
	guard    *guard.Guard
	public   string
}

// echoUpstream answers every request with a JSON Patient and remembers the
// last request it saw.
type echoUpstream struct {
	mu      sync.Mutex
	last    *http.Request
	body    []byte
	count   int
	respond func(w http.ResponseWriter, r *http.Request)
}

func (e *echoUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	e.last, e.body = r.Clone(context.Background()), b
	e.count++
	respond := e.respond
	e.mu.Unlock()
	if respond != nil {
		respond(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json")
	w.Header().Set("Location", "http://"+r.Host+"/base/Patient/p1/_history/1")
	_, _ = io.WriteString(w, `{"resourceType":"Patient","id":"p1","name":[{"family":"Echo"}]}`)
}

func (e *echoUpstream) seen() (*http.Request, []byte, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.last, e.body, e.count
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessOpts(t, nil)
}

// newHarnessOpts builds a harness; g, when set, replaces the in-memory
// guard (the harness closes it).
func newHarnessOpts(t *testing.T, g *guard.Guard) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), echo: &echoUpstream{}}
	h.sample = fhirsample.New(fhirsample.Options{Patients: 5, Seed: 1})
	mux := http.NewServeMux()
	mux.Handle("/fhir/", http.StripPrefix("/fhir", h.sample))
	h.upstream = httptest.NewServer(mux)
	t.Cleanup(h.upstream.Close)
	h.sample.SetBaseURL(h.upstream.URL + "/fhir")
	echoSrv := httptest.NewServer(h.echo)
	t.Cleanup(echoSrv.Close)
	h.echoBase = echoSrv.URL

	// The gateway's own listener exists before its config: the public
	// base must name it.
	h.srv = httptest.NewUnstartedServer(nil)
	h.public = "http://" + h.srv.Listener.Addr().String()

	keyFile := filepath.Join(h.dir, "issuer.pem")
	must(t, policy.GenerateDevKey(keyFile))
	key, err := policy.LoadSigningKey(keyFile)
	must(t, err)
	h.key = key
	jwks, err := policy.PublicJWKS(key)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(h.dir, "jwks.json"), jwks, 0o644))
	must(t, os.WriteFile(filepath.Join(h.dir, "upstream.token"), []byte("upstream-secret\n"), 0o600))
	h.writeConfig(nil)

	cfg, err := policy.Load(filepath.Join(h.dir, "fhirwall.yaml"))
	must(t, err)
	h.log, err = audit.Open(context.Background(), "sqlite://"+filepath.Join(h.dir, "audit.db"), audit.Options{Source: "test"})
	must(t, err)
	t.Cleanup(func() { h.log.Close() })
	h.guard = g
	if h.guard == nil {
		h.guard, err = guard.New(context.Background(), guard.Options{})
		must(t, err)
	}
	t.Cleanup(func() { h.guard.Close() })
	h.gw, err = New(context.Background(), cfg, Deps{Audit: h.log, Guard: h.guard})
	must(t, err)
	t.Cleanup(h.gw.Close)
	h.srv.Config.Handler = h.gw
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	return h
}

// writeConfig writes the test configuration, with edit applied to its text.
func (h *harness) writeConfig(edit func(string) string) string {
	var b bytes.Buffer
	must(h.t, template.Must(template.New("c").Parse(testConfig)).Execute(&b, map[string]string{
		"Public": h.public, "Upstream": h.upstream.URL, "Echo": h.echoBase,
	}))
	text := b.String()
	if edit != nil {
		text = edit(text)
	}
	file := filepath.Join(h.dir, "fhirwall.yaml")
	must(h.t, os.WriteFile(file, []byte(text), 0o644))
	return file
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// token mints a token for agent with scopes, valid for an hour.
func (h *harness) token(agent string, scopes ...string) string {
	return h.tokenWith(policy.DevToken{Agent: agent, Scopes: scopes})
}

func (h *harness) tokenWith(d policy.DevToken) string {
	if d.Issuer == "" {
		d.Issuer = "https://idp.test"
	}
	if d.Audience == "" {
		d.Audience = h.public + "/fhir"
	}
	if d.TTL == 0 {
		d.TTL = time.Hour
	}
	tok, err := policy.MintDevToken(h.key, d)
	must(h.t, err)
	return tok
}

// do sends a request through the gateway.
func (h *harness) do(method, path, token string, body io.Reader, hdr ...string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.public+path, body)
	must(h.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	must(h.t, err)
	return resp
}

// readJSON reads and decodes a response body.
func readJSON(t *testing.T, resp *http.Response) (map[string]any, []byte) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body is not JSON (%v): %s", err, b)
	}
	return m, b
}

// outcomeReason returns the fhirwall reason code of an OperationOutcome.
func outcomeReason(t *testing.T, m map[string]any) string {
	t.Helper()
	if m["resourceType"] != "OperationOutcome" {
		t.Fatalf("want an OperationOutcome, got %v", m["resourceType"])
	}
	issues, _ := m["issue"].([]any)
	for _, is := range issues {
		det, _ := is.(map[string]any)["details"].(map[string]any)
		codings, _ := det["coding"].([]any)
		for _, c := range codings {
			cm := c.(map[string]any)
			if cm["system"] == fhir.ReasonSystem {
				return cm["code"].(string)
			}
		}
	}
	t.Fatalf("no reason coding in %v", m)
	return ""
}

func (h *harness) patient(i int) string {
	ids := h.sample.PatientIDs()
	if i >= len(ids) {
		h.t.Fatalf("sample has %d patients", len(ids))
	}
	return ids[i]
}

func (h *harness) String() string { return fmt.Sprintf("harness(%s)", h.public) }

// signClaims signs arbitrary claims with the test issuer's key, for tokens
// MintDevToken refuses to make (expired ones, say).
func (h *harness) signClaims(claims map[string]any) string {
	h.t.Helper()
	payload, err := json.Marshal(claims)
	must(h.t, err)
	kid, _ := h.key.KeyID()
	hdr := jws.NewHeaders()
	must(h.t, hdr.Set(jws.TypeKey, "at+jwt"))
	must(h.t, hdr.Set(jws.KeyIDKey, kid))
	signed, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), h.key, jws.WithProtectedHeaders(hdr)))
	must(h.t, err)
	return string(signed)
}

func (h *harness) tokenWithPatient(agent, patient string, scopes ...string) string {
	return h.tokenWith(policy.DevToken{Agent: agent, Scopes: scopes, Patient: patient})
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
