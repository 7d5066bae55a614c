//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

func testUnauthenticated(t *testing.T, e *env) {
	r := e.call(t, "GET", "/fhir/Patient", "", nil)
	expectRefusal(t, r, http.StatusUnauthorized, fhir.ReasonTokenMissing)
	if h := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
		t.Errorf("WWW-Authenticate = %q, want a Bearer challenge", h)
	}
}

// testReadMasked reads one patient as the billing agent, with net/http and
// with fhir-kit-client: telecom and SSN are gone, the birth date is cut to
// the year, and the resource carries the REDACTED label.
func testReadMasked(t *testing.T, e *env) {
	p0 := e.upstream.Seed.Patients[0]
	r := e.call(t, "GET", "/fhir/Patient/"+p0, e.tokens["agent-billing-07"], nil)
	if r.status != http.StatusOK {
		t.Fatalf("billing read: %s", r)
	}
	checkBillingPatient(t, r.object(t), p0)
	sum := sha256.Sum256(r.body)
	e.billingReadSHA = hex.EncodeToString(sum[:])
	if ct := r.header.Get("Content-Type"); !strings.Contains(ct, "json") {
		t.Errorf("Content-Type = %q", ct)
	}
	res := e.runAgent(t, "agent-billing-07", map[string]any{"op": "read", "resourceType": "Patient", "id": p0})
	if !res[0].OK {
		t.Fatalf("fhir-kit-client read refused: %d %s", res[0].Status, res[0].Outcome)
	}
	checkBillingPatient(t, res[0].Result, p0)
}

// testSearchPagingFhirKit pages through every claim with fhir-kit-client's
// nextPage, which follows the Bundle's next links through fhirwall.
func testSearchPagingFhirKit(t *testing.T, e *env) {
	want := len(e.upstream.Seed.Patients) * e.upstream.Seed.ClaimsPerPatient
	res := e.runAgent(t, "agent-billing-07", map[string]any{
		"op": "search", "resourceType": "Claim", "searchParams": map[string]string{"_count": "5"}, "allPages": true,
	})
	if !res[0].OK {
		t.Fatalf("search refused: %d %s", res[0].Status, res[0].Outcome)
	}
	seen := map[string]bool{}
	for _, page := range res[0].Pages {
		checkNoUpstream(t, e, page)
		for _, id := range checkClaimsMasked(t, page) {
			if seen[id] {
				t.Errorf("Claim/%s on two pages", id)
			}
			seen[id] = true
		}
	}
	wantPages := (want + 4) / 5
	if len(res[0].Pages) != wantPages || len(seen) != want {
		t.Errorf("paging: %d pages and %d claims, want %d pages and %d claims", len(res[0].Pages), len(seen), wantPages, want)
	}
	// The same search as POST Claim/_search (form body), the form clients
	// use when parameters carry identifiers they keep out of URLs.
	p0 := e.upstream.Seed.Patients[0]
	res = e.runAgent(t, "agent-billing-07", map[string]any{
		"op": "search", "resourceType": "Claim", "postSearch": true,
		"searchParams": map[string]string{"patient": p0},
	})
	if !res[0].OK {
		t.Fatalf("POST Claim/_search refused: %d %s", res[0].Status, res[0].Outcome)
	}
	checkNoUpstream(t, e, res[0].Pages[0])
	if ids := checkClaimsMasked(t, res[0].Pages[0]); len(ids) != e.upstream.Seed.ClaimsPerPatient {
		t.Errorf("POST Claim/_search patient=%s: %d claims, want %d", p0, len(ids), e.upstream.Seed.ClaimsPerPatient)
	}
}

// testSearchPagingNetHTTP follows next links by hand with net/http, from
// the search of patients.
func testSearchPagingNetHTTP(t *testing.T, e *env) {
	u := "/fhir/Patient?_count=4"
	seen := map[string]bool{}
	pages := 0
	for u != "" && pages < 20 {
		r := e.call(t, "GET", u, e.tokens["agent-billing-07"], nil)
		if r.status != http.StatusOK {
			t.Fatalf("page %d: %s", pages+1, r)
		}
		b := r.object(t)
		pages++
		checkNoUpstream(t, e, b)
		res, _, _ := entries(b)
		for _, p := range res {
			id := fmt.Sprint(p["id"])
			checkBillingPatient(t, p, id)
			seen[id] = true
		}
		u = links(b)["next"]
	}
	if len(seen) < len(e.upstream.Seed.Patients) || pages < 3 {
		t.Errorf("followed %d pages and saw %d patients, want >= 3 pages and >= %d patients", pages, len(seen), len(e.upstream.Seed.Patients))
	}
}

// testInclude asks for claims with their patients: the included patients
// come masked like a direct read.
func testInclude(t *testing.T, e *env) {
	r := e.call(t, "GET", "/fhir/Claim?_include=Claim:patient:Patient&_count=4", e.tokens["agent-billing-07"], nil)
	if r.status != http.StatusOK {
		t.Fatalf("%s", r)
	}
	checkIncluded(t, e, r)
	// The short form, as FHIR clients send it: Claim.patient can only
	// point to a Patient, which the billing agent may read.
	r = e.call(t, "GET", "/fhir/Claim?_include=Claim:patient&_count=4", e.tokens["agent-billing-07"], nil)
	if r.status != http.StatusOK {
		t.Fatalf("_include without target: %s", r)
	}
	checkIncluded(t, e, r)
	// Observation.subject can also point to a Group, a Device or a
	// Location, which the lab reader may not read: refused, saying what
	// to name instead.
	r = e.call(t, "GET", "/fhir/Observation?_include=Observation:subject&_count=4", e.tokens["agent-labs-03"], nil)
	expectRefusal(t, r, http.StatusForbidden, fhir.ReasonScopeMissing)
	if !strings.Contains(string(r.body), "Group") {
		t.Errorf("the refusal does not say which target is out of scope: %s", r)
	}
}

func checkIncluded(t *testing.T, e *env, r reply) {
	t.Helper()
	b := r.object(t)
	checkNoUpstream(t, e, b)
	if len(checkClaimsMasked(t, b)) == 0 {
		t.Errorf("no Claim in %s", r)
	}
	res, modes, _ := entries(b)
	included := 0
	for i, x := range res {
		if x["resourceType"] == "Patient" {
			if modes[i] != "include" {
				t.Errorf("Patient/%v has search.mode %q, want include", x["id"], modes[i])
			}
			checkBillingPatient(t, x, fmt.Sprint(x["id"]))
			included++
		}
	}
	if included == 0 {
		t.Errorf("no included Patient in %s", r)
	}
}

// testIncludeOutsideScopes: the lab reader may read laboratory
// observations but no Patient; an _include of the subject must not disclose
// one (refused, or the included entries dropped).
func testIncludeOutsideScopes(t *testing.T, e *env) {
	r := e.call(t, "GET", "/fhir/Observation?_include=Observation:subject:Patient&_count=3", e.tokens["agent-labs-03"], nil)
	if r.status == http.StatusOK {
		res, _, _ := entries(r.object(t))
		for _, x := range res {
			if x["resourceType"] != "Observation" {
				t.Errorf("the lab reader received a %v it has no scope for", x["resourceType"])
			}
		}
		return
	}
	expectRefusal(t, r, http.StatusForbidden, fhir.ReasonScopeMissing)
}

func testScopeMissing(t *testing.T, e *env) {
	r := e.call(t, "GET", "/fhir/Observation", e.tokens["agent-billing-07"], nil)
	expectRefusal(t, r, http.StatusForbidden, fhir.ReasonScopeMissing)
	res := e.runAgent(t, "agent-billing-07", map[string]any{"op": "search", "resourceType": "Observation"})
	if res[0].OK || res[0].Status != http.StatusForbidden || reasonOf(res[0].Outcome) != string(fhir.ReasonScopeMissing) {
		t.Errorf("fhir-kit-client Observation search as billing: %+v", res[0])
	}
}

// testGranularScope: a SMART v2 granular scope
// (Observation.rs?category=...|laboratory) sees laboratory results only.
func testGranularScope(t *testing.T, e *env) {
	r := e.call(t, "GET", "/fhir/Observation?_count=100", e.tokens["agent-labs-03"], nil)
	if r.status != http.StatusOK {
		t.Fatalf("%s", r)
	}
	res, _, _ := entries(r.object(t))
	want := len(e.upstream.Seed.Patients) * 2 // two laboratory observations each
	if len(res) != want {
		t.Errorf("the lab reader got %d observations, want the %d laboratory ones", len(res), want)
	}
	for _, x := range res {
		if b, _ := json.Marshal(x["category"]); !strings.Contains(string(b), "laboratory") {
			t.Errorf("Observation/%v is not laboratory: %s", x["id"], b)
		}
	}
	// Asking for vital signs explicitly gives nothing of them.
	r = e.call(t, "GET", "/fhir/Observation?category=vital-signs", e.tokens["agent-labs-03"], nil)
	if r.status == http.StatusOK {
		res, _, _ := entries(r.object(t))
		if len(res) != 0 {
			t.Errorf("the lab reader received %d vital-signs observations", len(res))
		}
	} else if r.status != http.StatusForbidden {
		t.Errorf("vital-signs search as lab reader: %s", r)
	}
}

// testCapabilities: /fhir/metadata is the CapabilityStatement as this agent
// may use it (design: "SMART discovery; the CapabilityStatement as this
// agent may use it"), and the upstream's address is not in it.
func testCapabilities(t *testing.T, e *env) {
	r := e.call(t, "GET", "/fhir/metadata", e.tokens["agent-billing-07"], nil)
	if r.status != http.StatusOK {
		t.Fatalf("%s", r)
	}
	if strings.Contains(string(r.body), e.upstreamHP) {
		t.Errorf("the upstream address leaks in the CapabilityStatement: %s", r)
	}
	cs := r.object(t)
	rest, _ := cs["rest"].([]any)
	var types []string
	for _, x := range rest {
		rr, _ := x.(map[string]any)
		res, _ := rr["resource"].([]any)
		for _, y := range res {
			rt, _ := y.(map[string]any)
			types = append(types, fmt.Sprint(rt["type"]))
			for _, in := range rt["interaction"].([]any) {
				code := fmt.Sprint(in.(map[string]any)["code"])
				if code != "read" && code != "vread" && code != "search-type" && code != "history-instance" {
					t.Errorf("the billing agent (read/search scopes) is offered %s on %v", code, rt["type"])
				}
			}
		}
	}
	for _, ty := range types {
		if ty != "Claim" && ty != "Coverage" && ty != "Patient" {
			t.Errorf("the billing agent's CapabilityStatement offers %s (its scopes: Claim, Coverage, Patient); types %v", ty, types)
		}
	}
	sc := e.call(t, "GET", "/fhir/.well-known/smart-configuration", "", nil)
	if sc.status != http.StatusOK || !strings.Contains(string(sc.body), "permission-v2") {
		t.Errorf("smart-configuration: %s", sc)
	}
}

// testForwardedHeaders: what reaches the upstream. The agent's token never
// does; the client's X-Forwarded-* and cookies are dropped and fhirwall's
// own set; JSON with identity encoding is asked for.
func testForwardedHeaders(t *testing.T, e *env) {
	p0 := e.upstream.Seed.Patients[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.gw+"/fhir/Patient/"+p0, nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens["agent-billing-07"])
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("X-Forwarded-Host", "evil.example")
	req.Header.Set("Cookie", "session=e2e-secret")
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("read: %d", resp.StatusCode)
	}
	seen := e.upstreamSeen(t)
	if seen.WithAuthorization != 0 {
		t.Errorf("%d of %d requests reached the upstream with an Authorization header", seen.WithAuthorization, seen.Requests)
	}
	h := seen.Last.Headers
	raw, _ := json.Marshal(h)
	for _, leak := range []string{"203.0.113.9", "evil.example", "e2e-secret", e.tokens["agent-billing-07"]} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("the upstream received the client's %q: %s", leak, raw)
		}
	}
	if !strings.Contains(h["accept"], "json") || h["accept-encoding"] != "identity" && h["accept-encoding"] != "" {
		t.Errorf("upstream Accept %q, Accept-Encoding %q: want FHIR JSON, identity", h["accept"], h["accept-encoding"])
	}
}
