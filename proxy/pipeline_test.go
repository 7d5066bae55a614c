package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fhirwall/fhirwall/audit"
	"github.com/fhirwall/fhirwall/internal/fhirsample"
)

func entries(t *testing.T, m map[string]any) []map[string]any {
	t.Helper()
	var out []map[string]any
	es, _ := m["entry"].([]any)
	for _, e := range es {
		if r, ok := e.(map[string]any)["resource"].(map[string]any); ok {
			out = append(out, r)
		}
	}
	return out
}

func TestBillingAgentSeesClaimsMaskedAndNothingElse(t *testing.T) {
	h := newHarness(t)
	tok := h.token("agent-billing-07", "system/Claim.rs", "system/Patient.rs")
	resp := h.do("GET", "/fhir/Claim", tok, nil)
	m, body := readJSON(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	claims := entries(t, m)
	if len(claims) == 0 {
		t.Fatal("no claims")
	}
	if bytes.Contains(body, []byte(`"diagnosis"`)) {
		t.Fatal("Claim.diagnosis reached the billing agent")
	}
	for _, c := range claims {
		if !strings.Contains(toJSON(c["meta"]), "REDACTED") {
			t.Errorf("masked Claim %v carries no REDACTED label", c["id"])
		}
	}
	// Contact details of a Patient are masked; birth date cut to the year.
	resp = h.do("GET", "/fhir/Patient/"+h.patient(0), tok, nil)
	p, body := readJSON(t, resp)
	if resp.StatusCode != 200 || p["resourceType"] != "Patient" {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if _, ok := p["telecom"]; ok {
		t.Error("Patient.telecom reached the billing agent")
	}
	if bd, _ := p["birthDate"].(string); len(bd) != 4 {
		t.Errorf("birthDate %q was not generalized to a year", bd)
	}
	// Out of scope: refused before the upstream is asked.
	resp = h.do("GET", "/fhir/Observation", tok, nil)
	m, _ = readJSON(t, resp)
	if resp.StatusCode != 403 || outcomeReason(t, m) != "scope-missing" {
		t.Fatalf("Observation search: %d %v", resp.StatusCode, m)
	}
}

func TestPatientScopedAgentIsConfinedToItsCompartment(t *testing.T) {
	h := newHarness(t)
	own, other := h.patient(0), h.patient(1)
	tok := h.tokenWithPatient("agent-triage-01", own, "patient/Observation.rs", "patient/Patient.rs")
	// A search without any patient parameter is narrowed to the patient.
	resp := h.do("GET", "/fhir/Observation?_count=50", tok, nil)
	m, body := readJSON(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	obs := entries(t, m)
	if len(obs) == 0 {
		t.Fatal("no observations for the patient")
	}
	for _, o := range obs {
		ref := o["subject"].(map[string]any)["reference"].(string)
		if ref != "Patient/"+own {
			t.Fatalf("observation of %s returned to an agent confined to %s", ref, own)
		}
	}
	// Its own record reads; another patient's reads exactly like a
	// record that does not exist (no existence oracle).
	if resp := h.do("GET", "/fhir/Patient/"+own, tok, nil); resp.StatusCode != 200 {
		t.Fatalf("own record: %d", resp.StatusCode)
	}
	r1 := h.do("GET", "/fhir/Observation/obs-"+strings.TrimPrefix(other, "pat-")+"-1", tok, nil)
	r2 := h.do("GET", "/fhir/Observation/does-not-exist", tok, nil)
	b1, _ := io.ReadAll(r1.Body)
	b2, _ := io.ReadAll(r2.Body)
	r1.Body.Close()
	r2.Body.Close()
	if r1.StatusCode != 404 || r2.StatusCode != 404 || !bytes.Equal(b1, b2) {
		t.Fatalf("refused read (%d %s) and missing read (%d %s) differ", r1.StatusCode, b1, r2.StatusCode, b2)
	}
	// An explicit search for another patient is refused.
	resp = h.do("GET", "/fhir/Observation?subject=Patient/"+other, tok, nil)
	if resp.StatusCode == 200 {
		m, _ := readJSON(t, resp)
		for _, o := range entries(t, m) {
			if o["subject"].(map[string]any)["reference"] != "Patient/"+own {
				t.Fatal("another patient's observation leaked through an explicit search")
			}
		}
	} else {
		resp.Body.Close()
	}
	// The audit records the real reason of the refused read.
	if !strings.Contains(h.exportAudit(), "compartment-violation") {
		t.Error("the refused read is not audited as compartment-violation")
	}
}

func TestAuditorPullsDisclosuresAndAgentsCannot(t *testing.T) {
	h := newHarness(t)
	billing := h.token("agent-billing-07", "system/Patient.rs", "system/Claim.rs")
	pid := h.patient(0)
	resp := h.do("GET", "/fhir/Patient/"+pid, billing, nil)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("read: %d", resp.StatusCode)
	}
	// An agent without system/AuditEvent.rs never reaches the audit log.
	resp = h.do("GET", "/audit/AuditEvent", billing, nil)
	m, _ := readJSON(t, resp)
	if resp.StatusCode != 403 || outcomeReason(t, m) != "scope-missing" {
		t.Fatalf("agent reading the audit log: %d %v", resp.StatusCode, m)
	}
	auditor := h.token("auditor-1", "system/AuditEvent.rs")
	resp = h.do("GET", "/audit/AuditEvent?patient=Patient/"+pid, auditor, nil)
	m, body := readJSON(t, resp)
	if resp.StatusCode != 200 || m["resourceType"] != "Bundle" || m["type"] != "searchset" {
		t.Fatalf("auditor search: %d %s", resp.StatusCode, body)
	}
	if !bytes.Contains(body, []byte("agent-billing-07")) {
		t.Fatalf("the billing agent's read of %s is not in the accounting of disclosures: %s", pid, body)
	}
	resp = h.do("GET", "/audit/$verify", auditor, nil)
	_, body = readJSON(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("$verify: %d %s", resp.StatusCode, body)
	}
}

func TestKillSwitch(t *testing.T) {
	h := newHarness(t)
	billing := h.token("agent-billing-07", "system/Patient.rs")
	admin := h.token("admin-1", "fhirwall.admin")
	if resp := h.do("GET", "/fhir/Patient/"+h.patient(0), billing, nil); resp.StatusCode != 200 {
		t.Fatalf("before revocation: %d", resp.StatusCode)
	}
	// Only admins may revoke.
	resp := h.do("POST", "/admin/revoke", billing, strings.NewReader(`{"agent":"agent-billing-07"}`))
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("a non-admin revoked: %d", resp.StatusCode)
	}
	resp = h.do("POST", "/admin/revoke", admin, strings.NewReader(`{"agent":"agent-billing-07","reason":"test"}`))
	_, body := readJSON(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, body)
	}
	resp = h.do("GET", "/fhir/Patient/"+h.patient(0), billing, nil)
	m, _ := readJSON(t, resp)
	if resp.StatusCode != 403 || outcomeReason(t, m) != "agent-revoked" {
		t.Fatalf("after revocation: %d %v", resp.StatusCode, m)
	}
	resp = h.do("POST", "/admin/restore", admin, strings.NewReader(`{"agent":"agent-billing-07"}`))
	resp.Body.Close()
	if resp := h.do("GET", "/fhir/Patient/"+h.patient(0), billing, nil); resp.StatusCode != 200 {
		t.Fatalf("after restore: %d", resp.StatusCode)
	}
	if events := h.exportAudit(); !strings.Contains(events, "/admin/revoke") || !strings.Contains(events, "agent-revoked") {
		t.Error("the admin action or the refusal is not audited")
	}
}

func TestOnlyJSONIsServed(t *testing.T) {
	h := newHarness(t)
	tok := h.token("agent-echo", "system/Patient.rs")
	for _, tc := range []struct{ path, accept string }{
		{"/echo/Patient/p1?_format=xml", ""},
		{"/echo/Patient/p1?_format=application/fhir%2Bxml", ""},
		{"/echo/Patient/p1", "application/fhir+xml"},
		{"/echo/Patient/p1", "text/turtle"},
	} {
		resp := h.do("GET", tc.path, tok, nil, "Accept", tc.accept)
		m, _ := readJSON(t, resp)
		if resp.StatusCode != http.StatusNotAcceptable || outcomeReason(t, m) != "format-not-acceptable" {
			t.Errorf("%s Accept %q: %d %v", tc.path, tc.accept, resp.StatusCode, m)
		}
	}
	// An upstream that answers XML anyway is refused, never passed.
	h.echo.respond = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+xml")
		_, _ = io.WriteString(w, `<Patient xmlns="http://hl7.org/fhir"><telecom><value value="555"/></telecom></Patient>`)
	}
	resp := h.do("GET", "/echo/Patient/p1", tok, nil)
	m, body := readJSON(t, resp)
	if resp.StatusCode != http.StatusBadGateway || outcomeReason(t, m) != "response-unmaskable" || bytes.Contains(body, []byte("555")) {
		t.Fatalf("XML from upstream: %d %s", resp.StatusCode, body)
	}
}

func TestRESTRouteRules(t *testing.T) {
	h := newHarness(t)
	h.echo.respond = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"c1","amount":12,"diagnosis":[{"code":"E11.9"}]}`)
	}
	mapped := h.token("agent-echo", "billing.read")
	resp := h.do("GET", "/api/billing/claims/c1", mapped, nil)
	m, body := readJSON(t, resp)
	if resp.StatusCode != 200 || m["id"] != "c1" || bytes.Contains(body, []byte("E11.9")) {
		t.Fatalf("mapped scope: %d %s", resp.StatusCode, body)
	}
	for _, tc := range []struct {
		method, path, token, reason string
	}{
		{"GET", "/api/billing/claims/c1", h.token("agent-echo", "system/Patient.rs"), "scope-missing"},
		{"DELETE", "/api/billing/claims/c1", mapped, "route-rule-missing"},
		{"GET", "/api/billing/claims", mapped, "route-rule-missing"},
		{"GET", "/api/billing/claims/c1/../../admin", mapped, "path-invalid"},
		{"GET", "/api/billing/claims/c1%2F..%2Fx", mapped, "path-invalid"},
	} {
		resp := h.do(tc.method, tc.path, tc.token, nil)
		m, _ := readJSON(t, resp)
		if got := outcomeReason(t, m); got != tc.reason {
			t.Errorf("%s %s: %d %s, want %s", tc.method, tc.path, resp.StatusCode, got, tc.reason)
		}
	}
}

func TestMetadataIsTrimmedToTheAgent(t *testing.T) {
	h := newHarness(t)
	tok := h.token("agent-billing-07", "system/Claim.rs", "system/Patient.rs")
	resp := h.do("GET", "/fhir/metadata", tok, nil)
	m, body := readJSON(t, resp)
	if resp.StatusCode != 200 || m["resourceType"] != "CapabilityStatement" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	types := map[string]bool{}
	for _, r := range m["rest"].([]any)[0].(map[string]any)["resource"].([]any) {
		rm := r.(map[string]any)
		types[rm["type"].(string)] = true
		for _, it := range rm["interaction"].([]any) {
			if code := it.(map[string]any)["code"]; code != "read" && code != "vread" && code != "search-type" && code != "history-instance" && code != "history-type" {
				t.Errorf("%s offers %v to a read-only agent", rm["type"], code)
			}
		}
	}
	if !types["Claim"] || !types["Patient"] || types["Observation"] || types["Condition"] {
		t.Fatalf("types offered: %v", types)
	}
	if !bytes.Contains(body, []byte("SMART-on-FHIR")) {
		t.Error("no SMART security service")
	}
	if bytes.Contains(body, []byte(strings.TrimPrefix(h.upstream.URL, "http://"))) {
		t.Error("the upstream host leaks through the CapabilityStatement")
	}
	resp = h.do("GET", "/fhir/.well-known/smart-configuration", "", nil)
	m, body = readJSON(t, resp)
	if resp.StatusCode != 200 || m["capabilities"] == nil || m["issuer"] == nil {
		t.Fatalf("smart-configuration: %d %s", resp.StatusCode, body)
	}
}

func TestShadowModeAuditsWhatWouldBeRefused(t *testing.T) {
	h := newHarness(t)
	tok := h.token("agent-billing-07", "system/Claim.rs", "system/Patient.rs")
	resp := h.do("GET", "/shadow/Observation?_count=1", tok, nil)
	m, body := readJSON(t, resp)
	if resp.StatusCode != 200 || m["resourceType"] != "Bundle" {
		t.Fatalf("shadow route refused: %d %s", resp.StatusCode, body)
	}
	// Masks still apply in shadow mode.
	resp = h.do("GET", "/shadow/Patient/"+h.patient(0), tok, nil)
	p, _ := readJSON(t, resp)
	if _, ok := p["telecom"]; ok {
		t.Error("shadow mode dropped the masks")
	}
	h.gw.completions.Wait() // completion records are written after the response
	events := h.exportAudit()
	if !strings.Contains(events, "shadow-deny") || !strings.Contains(events, "scope-missing") {
		t.Fatal("the shadow refusal is not audited as shadow-deny scope-missing")
	}
	// The enforcing route refuses the same request.
	resp = h.do("GET", "/fhir/Observation?_count=1", tok, nil)
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("enforcing route: %d", resp.StatusCode)
	}
}

func TestBatchEntriesAreAuthorizedOneByOne(t *testing.T) {
	h := newHarness(t)
	own, other := h.patient(0), h.patient(1)
	tok := h.tokenWithPatient("agent-triage-01", own, "patient/Observation.rs", "patient/Patient.rs")
	batch := `{"resourceType":"Bundle","type":"batch","entry":[
	 {"request":{"method":"GET","url":"Observation?category=vital-signs"}},
	 {"request":{"method":"GET","url":"Claim"}},
	 {"request":{"method":"GET","url":"Observation/obs-` + strings.TrimPrefix(other, "pat-") + `-1"}},
	 {"request":{"method":"GET","url":"Patient/` + own + `"}}]}`
	resp := h.do("POST", "/fhir", tok, strings.NewReader(batch), "Content-Type", "application/fhir+json")
	m, body := readJSON(t, resp)
	if resp.StatusCode != 200 || m["type"] != "batch-response" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	es := m["entry"].([]any)
	if len(es) != 4 {
		t.Fatalf("%d entries, want one answer per request entry: %s", len(es), body)
	}
	want := []string{"200", "403", "404", "200"}
	for i, e := range es {
		status := e.(map[string]any)["response"].(map[string]any)["status"].(string)
		if !strings.HasPrefix(status, want[i]) {
			t.Errorf("entry %d: status %q, want %s", i, status, want[i])
		}
	}
	if bytes.Contains(body, []byte("Patient/"+other)) {
		t.Fatal("another patient's data is in the batch response")
	}
	// The narrowed search held only the patient's observations.
	inner := es[0].(map[string]any)["resource"].(map[string]any)
	for _, o := range entries(t, inner) {
		if o["subject"].(map[string]any)["reference"] != "Patient/"+own {
			t.Fatal("the batch search was not narrowed to the patient")
		}
	}
}

func TestWritesCannotReachAnotherPatientsRecords(t *testing.T) {
	h := newHarness(t)
	own, other := h.patient(0), h.patient(1)
	tok := h.tokenWithPatient("agent-triage-01", own, "patient/Observation.rs", "patient/Observation.cu")
	otherObs := "obs-" + strings.TrimPrefix(other, "pat-") + "-1"
	// Moving another patient's observation into this patient's record.
	body := `{"resourceType":"Observation","id":"` + otherObs + `","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + own + `"}}`
	resp := h.do("PUT", "/fhir/Observation/"+otherObs, tok, strings.NewReader(body), "Content-Type", "application/fhir+json")
	m, _ := readJSON(t, resp)
	if resp.StatusCode != 404 || outcomeReason(t, m) != "not-found" {
		t.Fatalf("update of another patient's record: %d %v", resp.StatusCode, m)
	}
	// Writing into another patient's compartment.
	body = `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + other + `"}}`
	resp = h.do("POST", "/fhir/Observation", tok, strings.NewReader(body), "Content-Type", "application/fhir+json")
	m, _ = readJSON(t, resp)
	if resp.StatusCode != 403 || outcomeReason(t, m) != "compartment-violation" {
		t.Fatalf("create for another patient: %d %v", resp.StatusCode, m)
	}
	// The same smuggled through a transaction refuses it whole.
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:1","resource":{"resourceType":"Observation","status":"final","code":{"text":"ok"},"subject":{"reference":"Patient/` + own + `"}},"request":{"method":"POST","url":"Observation"}},
	 {"resource":{"resourceType":"Observation","id":"` + otherObs + `","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + own + `"}},"request":{"method":"PUT","url":"Observation/` + otherObs + `"}}]}`
	resp = h.do("POST", "/fhir", tok, strings.NewReader(tx), "Content-Type", "application/fhir+json")
	m, _ = readJSON(t, resp)
	if resp.StatusCode < 400 || m["resourceType"] != "OperationOutcome" {
		t.Fatalf("smuggling transaction: %d %v", resp.StatusCode, m)
	}
	// An honest write in its own compartment goes through.
	body = `{"resourceType":"Observation","status":"final","code":{"text":"ok"},"subject":{"reference":"Patient/` + own + `"}}`
	resp = h.do("POST", "/fhir/Observation", tok, strings.NewReader(body), "Content-Type", "application/fhir+json")
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("own create: %d", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, h.public+"/fhir/Observation/") {
		t.Errorf("Location %q", loc)
	}
}

func TestStreamedReadOfAnotherPatientAnswersNotFound(t *testing.T) {
	h := newHarness(t)
	// The upstream streams (chunked, flushed) another patient's record.
	h.echo.respond = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		_, _ = io.WriteString(w, `{"resourceType":"Observation","id":"o1",`)
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, `"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/someone-else"}}`)
	}
	tok := h.tokenWithPatient("agent-triage-01", "pat-001", "patient/Observation.rs")
	resp := h.do("GET", "/echo/Observation/o1", tok, nil)
	m, body := readJSON(t, resp)
	if resp.StatusCode != 404 || outcomeReason(t, m) != "not-found" || bytes.Contains(body, []byte("someone-else")) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// TestLargeDisclosuresAreAuditedInParts: a search disclosing more patients
// than one AuditEvent lists gets continuation events, and a patient near
// the end is still found by the accounting of disclosures.
func TestLargeDisclosuresAreAuditedInParts(t *testing.T) {
	h := newHarness(t)
	const patients = 2500
	h.echo.respond = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/fhir+json")
		_ = fhirsample.WriteSearchset(w, 2*patients, 1) // a Patient and an Observation each
	}
	tok := h.token("agent-echo", "system/Patient.rs", "system/Observation.rs")
	resp := h.do("GET", "/echo/Patient?_revinclude=Observation:subject", tok, nil)
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || n == 0 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	h.gw.completions.Wait()
	auditor := h.token("auditor-1", "system/AuditEvent.rs")
	last := fmt.Sprintf("bp-%d", patients-1)
	resp = h.do("GET", "/audit/AuditEvent?patient=Patient/"+last, auditor, nil)
	_, body := readJSON(t, resp)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"Patient/`+last+`"`)) {
		t.Fatalf("the disclosure of %s is not audited: %d %.500s", last, resp.StatusCode, body)
	}
	// 2500 patients and 5001 resources (the Bundle too): 2 continuation
	// events for the patients, 5 for the resources.
	if parts := strings.Count(h.exportAudit(), audit.ExtPart); parts < 2*patients/maxPerEvent {
		t.Fatalf("%d continuation events for %d patients", parts, patients)
	}
}

// TestReadWithLyingContentLength: a single resource whose upstream claims
// a terabyte and then stops is a failed upstream response (never an
// allocation of what the header claims), refused and audited.
func TestReadWithLyingContentLength(t *testing.T) {
	h := newHarness(t)
	h.echo.respond = func(w http.ResponseWriter, r *http.Request) {
		conn, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = bw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: 1099511627776\r\n\r\n" +
			`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"}}`)
		_ = bw.Flush()
	}
	tok := h.token("agent-echo", "system/Observation.rs")
	resp := h.do("GET", "/echo/Observation/o1", tok, nil)
	m, body := readJSON(t, resp)
	if resp.StatusCode < 500 || m["resourceType"] != "OperationOutcome" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// TestClientGoneBeforeTheAnswerIsNotAnUpstreamFailure: an agent that hangs
// up while the upstream is still working is recorded as having gone away
// (the upstream did nothing wrong), so neither the auditor nor the
// upstream's failure figures are misled.
func TestClientGoneBeforeTheAnswerIsNotAnUpstreamFailure(t *testing.T) {
	h := newHarness(t)
	arrived, release := make(chan struct{}), make(chan struct{})
	h.echo.respond = func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}
	defer close(release)
	tok := h.token("agent-echo", "system/Patient.rs")
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", h.public+"/echo/Patient/p1", nil)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-arrived
	cancel()
	if err := <-done; err == nil {
		t.Fatal("the cancelled request got an answer")
	}
	var events string
	for deadline := time.Now().Add(10 * time.Second); ; {
		h.gw.completions.Wait()
		events = h.exportAudit()
		if strings.Contains(events, `audit-phase","valueCode":"complete"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(events, `"outcomeDesc":"client-disconnected"`) {
		t.Errorf("the access is not recorded as the client going away:\n%s", events)
	}
	if strings.Contains(events, "upstream-unavailable") || strings.Contains(events, "upstream failed") {
		t.Errorf("a client that went away is recorded as an upstream failure:\n%s", events)
	}
}

// TestFilteredBodiesDoNotMix: bodies filtered whole are served from
// recycled buffers; many concurrent responses of different lengths must
// each arrive whole and as their own.
func TestFilteredBodiesDoNotMix(t *testing.T) {
	h := newHarness(t)
	h.echo.respond = func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimPrefix(r.URL.Path, "/base/Patient/")
		w.Header().Set("Content-Type", "application/fhir+json")
		fmt.Fprintf(w, `{"resourceType":"Patient","id":%q,"name":[{"family":%q}]}`, id, strings.Repeat(id, len(id)*50))
	}
	tok := h.token("agent-echo", "system/Patient.rs")
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				id := fmt.Sprintf("p%d-%s", g, strings.Repeat("x", (g*7+i*13)%40))
				req, _ := http.NewRequest("GET", h.public+"/echo/Patient/"+id, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := fmt.Sprintf(`"family":%q`, strings.Repeat(id, len(id)*50))
				if err != nil || resp.StatusCode != 200 || !bytes.Contains(body, []byte(want)) ||
					resp.ContentLength != int64(len(body)) {
					t.Errorf("%s: %d %v, %d bytes (Content-Length %d): %.200s", id, resp.StatusCode, err, len(body), resp.ContentLength, body)
					return
				}
			}
		}()
	}
	wg.Wait()
}
