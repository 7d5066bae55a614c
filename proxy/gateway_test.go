package proxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fhirwall/fhirwall/policy"
)

// exportAudit returns every audit event written so far, as NDJSON.
func (h *harness) exportAudit() string {
	h.t.Helper()
	var b bytes.Buffer
	if _, err := h.log.Export(context.Background(), &b, time.Time{}); err != nil {
		h.t.Fatal(err)
	}
	return b.String()
}

func TestAuthenticationFailuresAreRefusedAndAudited(t *testing.T) {
	h := newHarness(t)
	good := h.token("agent-echo", "system/Patient.rs")
	now := time.Now().Unix()
	expired := h.signClaims(map[string]any{"iss": "https://idp.test", "sub": "agent-echo", "aud": h.public + "/fhir",
		"scope": "system/Patient.rs", "iat": now - 7200, "exp": now - 3600})
	wrongAud := h.tokenWith(policy.DevToken{Agent: "agent-echo", Scopes: []string{"system/Patient.rs"}, Audience: "https://elsewhere"})
	stranger := h.token("agent-nobody", "system/Patient.rs")
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`))
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://idp.test","sub":"agent-echo","aud":"x","exp":9999999999}`))
	none := header + "." + payload + "."
	for _, tc := range []struct {
		name   string
		hdr    []string
		reason string
	}{
		{"missing", nil, "token-missing"},
		{"basic scheme", []string{"Authorization", "Basic YWdlbnQ6cHc="}, "token-malformed"},
		{"two headers", []string{"Authorization", "Bearer " + good, "Authorization", "Bearer " + good}, "token-malformed"},
		{"expired", []string{"Authorization", "Bearer " + expired}, "token-expired"},
		{"wrong audience", []string{"Authorization", "Bearer " + wrongAud}, "audience-mismatch"},
		{"unregistered agent", []string{"Authorization", "Bearer " + stranger}, "agent-unknown"},
		{"alg none", []string{"Authorization", "Bearer " + none}, ""},
		{"garbage", []string{"Authorization", "Bearer not.a.jwt"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, before := h.echo.seen()
			resp := h.do("GET", "/echo/Patient/p1", "", nil, tc.hdr...)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			// RFC 6750 3.1: a request without credentials gets a bare
			// challenge; a bad token gets error="invalid_token".
			wa := resp.Header.Get("WWW-Authenticate")
			wantErr := tc.reason != "token-missing"
			if !strings.HasPrefix(wa, "Bearer") || strings.Contains(wa, `error="invalid_token"`) != wantErr {
				t.Errorf("WWW-Authenticate = %q", wa)
			}
			m, body := readJSON(t, resp)
			reason := outcomeReason(t, m)
			if tc.reason != "" && reason != tc.reason {
				t.Errorf("reason %q, want %q", reason, tc.reason)
			}
			if strings.Contains(string(body), good[:20]) {
				t.Error("the refusal echoes the token")
			}
			if _, _, after := h.echo.seen(); after != before {
				t.Error("the upstream was called for an unauthenticated request")
			}
		})
	}
	events := h.exportAudit()
	if n := strings.Count(events, `"unauthenticated"`); n < 7 {
		t.Errorf("want every authentication failure audited as unauthenticated, found %d", n)
	}
	if strings.Contains(events, good) {
		t.Error("the audit log holds a token")
	}
}

func TestHeaderHygiene(t *testing.T) {
	h := newHarness(t)
	tok := h.token("agent-echo", "system/Patient.rs")
	resp := h.do("GET", "/echo/Patient/p1", tok, nil,
		"X-Forwarded-For", "6.6.6.6",
		"Forwarded", "for=6.6.6.6;host=evil",
		"X-Forwarded-Host", "evil.example",
		"X-Real-IP", "6.6.6.6",
		"Cookie", "session=stolen",
		"X-Request-Id", "client-chosen",
		// A client naming headers in Connection must not strip the
		// ones fhirwall adds.
		"Connection", "X-Forwarded-For, X-Request-Id, Authorization, X-Forwarded-Prefix",
		"Accept", "application/json",
	)
	if resp.StatusCode != http.StatusOK {
		m, _ := readJSON(t, resp)
		t.Fatalf("status %d: %v", resp.StatusCode, m)
	}
	resp.Body.Close()
	got, _, _ := h.echo.seen()
	if a := got.Header.Get("Authorization"); a != "Bearer upstream-secret" {
		t.Errorf("upstream Authorization = %q, want the route's own credential", a)
	}
	if xff := got.Header.Values("X-Forwarded-For"); len(xff) != 1 || xff[0] != "127.0.0.1" {
		t.Errorf("upstream X-Forwarded-For = %q, want only the real client address", xff)
	}
	for _, hdr := range []string{"Forwarded", "X-Real-Ip", "Cookie"} {
		if v := got.Header.Get(hdr); v != "" {
			t.Errorf("upstream saw %s: %q", hdr, v)
		}
	}
	if v := got.Header.Get("X-Forwarded-Host"); v == "evil.example" {
		t.Error("a forged X-Forwarded-Host reached the upstream")
	}
	if id := got.Header.Get("X-Request-Id"); id == "" || id == "client-chosen" {
		t.Errorf("upstream X-Request-Id = %q, want fhirwall's own", id)
	}
	if id := resp.Header.Get("X-Request-Id"); id == "" || id != got.Header.Get("X-Request-Id") {
		t.Errorf("agent sees request id %q, upstream %q", id, got.Header.Get("X-Request-Id"))
	}
	if v := got.Header.Get("Accept"); v != "application/fhir+json" {
		t.Errorf("upstream Accept = %q", v)
	}
	if v := got.Header.Get("Accept-Encoding"); v != "identity" {
		t.Errorf("upstream Accept-Encoding = %q", v)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("a response with patient data may be cached: Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	if got.URL.Path != "/base/Patient/p1" {
		t.Errorf("upstream path %q", got.URL.Path)
	}
}

func TestUpstreamURLsNeverReachTheAgent(t *testing.T) {
	h := newHarness(t)
	tok := h.token("agent-billing-07", "system/Patient.rs")
	resp := h.do("GET", "/fhir/Patient?_count=2", tok, nil)
	m, body := readJSON(t, resp)
	if resp.StatusCode != 200 || m["resourceType"] != "Bundle" {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	upstreamHost := strings.TrimPrefix(h.upstream.URL, "http://")
	if strings.Contains(string(body), upstreamHost) {
		t.Fatalf("the upstream host leaks in the body: %s", body)
	}
	links, _ := m["link"].([]any)
	if len(links) == 0 {
		t.Fatal("no Bundle.link")
	}
	for _, l := range links {
		if u := l.(map[string]any)["url"].(string); !strings.HasPrefix(u, h.public+"/fhir") {
			t.Errorf("link %q is not under the public base", u)
		}
	}
	for _, e := range m["entry"].([]any) {
		if u := e.(map[string]any)["fullUrl"].(string); !strings.HasPrefix(u, h.public+"/fhir/") {
			t.Errorf("fullUrl %q is not under the public base", u)
		}
	}
	// Location headers too.
	etok := h.token("agent-echo", "system/Patient.rs", "system/Patient.c")
	resp = h.do("POST", "/echo/Patient", etok, strings.NewReader(`{"resourceType":"Patient"}`), "Content-Type", "application/fhir+json")
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); loc != h.public+"/echo/Patient/p1/_history/1" {
		t.Errorf("Location = %q", loc)
	}
}

func TestHotReloadGoodAndBad(t *testing.T) {
	h := newHarness(t)
	file := filepath.Join(h.dir, "fhirwall.yaml")
	newcomer := h.token("agent-new", "system/Patient.rs")
	if resp := h.do("GET", "/echo/Patient/p1", newcomer, nil); resp.StatusCode != 401 {
		t.Fatalf("an unregistered agent got %d", resp.StatusCode)
	}
	// Good: register the agent.
	h.writeConfig(func(s string) string {
		return strings.Replace(s, "agents:\n", "agents:\n  - id: agent-new\n    roles: [echo]\n", 1)
	})
	cfg, err := policy.Load(file)
	must(t, err)
	must(t, h.gw.Reload(context.Background(), cfg))
	if resp := h.do("GET", "/echo/Patient/p1", newcomer, nil); resp.StatusCode != 200 {
		t.Fatalf("after a good reload the new agent got %d", resp.StatusCode)
	}
	version := h.gw.Config().Version
	// Bad: an unknown mask profile. The reload fails and the running
	// configuration stays.
	h.writeConfig(func(s string) string {
		s = strings.Replace(s, "agents:\n", "agents:\n  - id: agent-new\n    roles: [echo]\n", 1)
		return strings.Replace(s, "masks: [hide-diagnosis, contact-minimum]", "masks: [hide-diagnosis, no-such-profile]", 1)
	})
	if _, err := policy.Load(file); err == nil {
		t.Fatal("the broken config loaded")
	} else if !strings.Contains(err.Error(), "fhirwall.yaml:") {
		t.Errorf("the problem does not name file and line: %v", err)
	}
	if err := h.gw.reloadFromFile(context.Background()); err == nil {
		t.Fatal("reload of a broken file succeeded")
	}
	if h.gw.Config().Version != version {
		t.Fatal("a failed reload replaced the running configuration")
	}
	if resp := h.do("GET", "/echo/Patient/p1", newcomer, nil); resp.StatusCode != 200 {
		t.Fatalf("after a failed reload the agent got %d", resp.StatusCode)
	}
}

func TestAuditUnavailableRefusesBeforeForwarding(t *testing.T) {
	h := newHarness(t)
	tok := h.token("agent-echo", "system/Patient.rs")
	must(t, h.log.Close())
	_, _, before := h.echo.seen()
	resp := h.do("GET", "/echo/Patient/p1", tok, nil)
	m, _ := readJSON(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || outcomeReason(t, m) != "audit-unavailable" {
		t.Fatalf("status %d reason %v", resp.StatusCode, m)
	}
	if _, _, after := h.echo.seen(); after != before {
		t.Fatal("the upstream was called without a durable audit intent")
	}
	// Not even the read a patient-scoped write makes first.
	writer := h.tokenWithPatient("agent-triage-01", "pat-001", "patient/Observation.rs", "patient/Observation.u")
	body := `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/pat-001"}}`
	resp = h.do("PUT", "/echo/Observation/o1", writer, strings.NewReader(body), "Content-Type", "application/fhir+json")
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("write with the audit down: %d", resp.StatusCode)
	}
	if _, _, after := h.echo.seen(); after != before {
		t.Fatal("a write's prefetch reached the upstream without a durable audit intent")
	}
}
