package fhirsample

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fixture is a Server mounted at /fhir on a live httptest server, as the
// demo mounts it.
type fixture struct {
	t    *testing.T
	s    *Server
	base string
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	s := New(opts)
	mux := http.NewServeMux()
	mux.Handle("/fhir/", http.StripPrefix("/fhir", s))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	s.SetBaseURL(ts.URL + "/fhir/")
	return &fixture{t: t, s: s, base: ts.URL + "/fhir"}
}

// with returns f reporting to t, for use in subtests.
func (f *fixture) with(t *testing.T) *fixture {
	c := *f
	c.t = t
	return &c
}

// reply is a decoded HTTP answer.
type reply struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

// do sends a request; path is relative to the base unless absolute.
// headers are name, value pairs.
func (f *fixture) do(method, path, body string, headers ...string) reply {
	f.t.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = f.base + "/" + strings.TrimPrefix(path, "/")
	}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
			f.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
		}
		if err := json.Unmarshal(raw, &r.body); err != nil {
			f.t.Fatalf("%s %s: body is not JSON: %v", method, path, err)
		}
	}
	return r
}

// get is do for GET requests expecting the given status.
func (f *fixture) get(path string, want int, headers ...string) map[string]any {
	f.t.Helper()
	r := f.do(http.MethodGet, path, "", headers...)
	if r.status != want {
		f.t.Fatalf("GET %s: status %d, want %d; body %s", path, r.status, want, r.raw)
	}
	return r.body
}

// str follows a path of keys and indexes ("name.0.family") in decoded JSON.
func str(v any, path string) string {
	for _, step := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[step]
		case []any:
			i := 0
			for _, c := range step {
				i = i*10 + int(c-'0')
			}
			if i >= len(x) {
				return ""
			}
			v = x[i]
		default:
			return ""
		}
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		b, _ := json.Marshal(x)
		return string(b)
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return ""
}

func entries(bundle map[string]any) []map[string]any {
	var out []map[string]any
	list, _ := bundle["entry"].([]any)
	for _, e := range list {
		out = append(out, e.(map[string]any))
	}
	return out
}

func total(bundle map[string]any) int {
	n, ok := bundle["total"].(float64)
	if !ok {
		return -1
	}
	return int(n)
}

// isOutcome asserts that a reply is an error OperationOutcome.
func isOutcome(t *testing.T, r reply) {
	t.Helper()
	if str(r.body, "resourceType") != "OperationOutcome" || str(r.body, "issue.0.severity") != "error" {
		t.Fatalf("status %d: want an error OperationOutcome, got %s", r.status, r.raw)
	}
}

func TestCapabilities(t *testing.T) {
	f := newFixture(t, Options{Seed: 1})
	cs := f.get("metadata", http.StatusOK)
	if str(cs, "resourceType") != "CapabilityStatement" || str(cs, "fhirVersion") != "4.0.1" {
		t.Fatalf("not an R4 CapabilityStatement: %v", cs)
	}
	var types []string
	for _, r := range cs["rest"].([]any)[0].(map[string]any)["resource"].([]any) {
		types = append(types, str(r, "type"))
	}
	if got, want := strings.Join(types, ","), strings.Join(resourceTypes, ","); got != want {
		t.Errorf("types %s, want %s", got, want)
	}
	raw, _ := json.Marshal(cs)
	for _, want := range []string{`"code":"transaction"`, `"code":"batch"`, `"name":"everything"`, `"Observation:subject"`, `"name":"birthdate"`} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("CapabilityStatement lacks %s", want)
		}
	}
	if str(cs, "implementation.url") != f.base {
		t.Errorf("implementation.url %q, want %q", str(cs, "implementation.url"), f.base)
	}
}

func TestRead(t *testing.T) {
	f := newFixture(t, Options{Seed: 1})
	tests := []struct {
		path   string
		status int
		check  string // path that must be non-empty in the body
	}{
		{"Patient/pat-001", 200, "birthDate"},
		{"Patient/pat-020", 200, "address.0.postalCode"},
		{"Patient/pat-021", 404, "issue.0.diagnostics"},
		{"Observation/obs-001-1", 200, "subject.display"},
		{"Observation/obs-001-1/_history/1", 200, "valueQuantity.unit"},
		{"Observation/obs-001-1/_history/2", 404, "issue.0.code"},
		{"Observation/obs-001-1/_history/x", 404, "issue.0.code"},
		{"Claim/claim-001-1", 200, "diagnosis.0.diagnosisCodeableConcept.coding.0.code"},
		{"Claim/claim-002-1", 404, "issue.0.code"},
		{"Coverage/cov-002", 200, "payor.0.reference"},
		{"Condition/cond-001-2", 200, "category.0.coding.0.code"},
		{"Encounter/enc-001-1", 200, "subject.display"},
		{"Practitioner/prac-5", 200, "name.0.family"},
		{"Organization/org-payer-2", 200, "name"},
		{"Medication/1", 404, "issue.0.diagnostics"},
		{"Patient/pat-001/Medication", 404, "issue.0.diagnostics"},
		{"Patient/pat-001/_history/1/extra", 404, "issue.0.diagnostics"},
		{"Patient/pat-001/$unknown", 404, "issue.0.diagnostics"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			f := f.with(t)
			r := f.do(http.MethodGet, tt.path, "")
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.raw)
			}
			if str(r.body, tt.check) == "" {
				t.Errorf("%s is empty in %s", tt.check, r.raw)
			}
			if tt.status >= 400 {
				isOutcome(t, r)
				return
			}
			if r.header.Get("ETag") != `W/"1"` || r.header.Get("Last-Modified") == "" {
				t.Errorf("ETag %q, Last-Modified %q", r.header.Get("ETag"), r.header.Get("Last-Modified"))
			}
			if typ := strings.Split(tt.path, "/")[0]; str(r.body, "resourceType") != typ {
				t.Errorf("resourceType %q, want %s", str(r.body, "resourceType"), typ)
			}
			if !bytes.HasPrefix(r.raw, []byte(`{"resourceType":`)) {
				t.Errorf("resourceType is not the first key: %.40s", r.raw)
			}
		})
	}
}

func TestFormats(t *testing.T) {
	f := newFixture(t, Options{Seed: 1})
	tests := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
	}{
		{"accept xml", "GET", "Patient/pat-001", "", []string{"Accept", "application/fhir+xml"}, 406},
		{"format xml", "GET", "Patient/pat-001?_format=xml", "", nil, 406},
		{"accept json", "GET", "Patient/pat-001", "", []string{"Accept", "application/fhir+json"}, 200},
		{"accept any", "GET", "Patient/pat-001", "", []string{"Accept", "application/fhir+xml, */*;q=0.1"}, 200},
		{"format json", "GET", "Patient/pat-001?_format=json", "", nil, 200},
		{"xml body", "POST", "Patient", "<Patient/>", []string{"Content-Type", "application/fhir+xml"}, 415},
		{"method", "PATCH", "Patient/pat-001", "{}", nil, 405},
		{"method on history", "POST", "Patient/pat-001/_history", "{}", nil, 405},
		{"huge body", "POST", "Patient", strings.Repeat(" ", maxBody+1), nil, 413},
		{"system search", "GET", "", "", nil, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := f.with(t)
			r := f.do(tt.method, tt.path, tt.body, tt.headers...)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.raw)
			}
			if tt.status >= 400 {
				isOutcome(t, r)
			}
		})
	}
}

// TestSyntheticData checks the promises made about every generated
// resource: the demo tag, a narrative, version metadata, and fake
// identifiers only.
func TestSyntheticData(t *testing.T) {
	f := newFixture(t, Options{Seed: 7})
	counts := map[string]int{"Patient": 20, "Observation": 140, "Condition": 40, "Encounter": 40,
		"Claim": 20, "Coverage": 20, "Practitioner": 5, "Organization": 3}
	for typ, want := range counts {
		b := f.get(typ+"?_count=500", http.StatusOK)
		if total(b) != want || len(entries(b)) != want {
			t.Errorf("%s: total %d, %d entries, want %d", typ, total(b), len(entries(b)), want)
		}
		for _, e := range entries(b) {
			res := e["resource"]
			id := str(res, "id")
			if str(e, "fullUrl") != f.base+"/"+typ+"/"+id {
				t.Errorf("fullUrl %q", str(e, "fullUrl"))
			}
			if str(res, "meta.tag.0.system") != DemoTagSystem || str(res, "meta.tag.0.code") != "synthetic" {
				t.Errorf("%s/%s lacks the synthetic tag", typ, id)
			}
			if str(res, "meta.versionId") != "1" || str(res, "meta.lastUpdated") == "" {
				t.Errorf("%s/%s: meta %v", typ, id, res.(map[string]any)["meta"])
			}
			if !strings.HasPrefix(str(res, "text.div"), `<div xmlns="http://www.w3.org/1999/xhtml">`) {
				t.Errorf("%s/%s: narrative %q", typ, id, str(res, "text.div"))
			}
			if typ == "Patient" {
				if ssn := str(res, "identifier.1.value"); str(res, "identifier.1.system") != SSNSystem || !strings.HasPrefix(ssn, "999-") || len(ssn) != 11 {
					t.Errorf("%s: SSN identifier %q", id, ssn)
				}
				if !strings.Contains(str(res, "telecom.0.value"), " 555-01") {
					t.Errorf("%s: phone %q is not fictional", id, str(res, "telecom.0.value"))
				}
			}
		}
	}
	ids := f.s.PatientIDs()
	if len(ids) != 20 || ids[0] != "pat-001" || ids[19] != "pat-020" {
		t.Errorf("PatientIDs = %v", ids)
	}
}

// TestDeterministic checks that a seed fixes the data and that the shape
// of the data does not depend on it.
func TestDeterministic(t *testing.T) {
	a, b, c := newFixture(t, Options{Seed: 42, Patients: 5}), newFixture(t, Options{Seed: 42, Patients: 5}), newFixture(t, Options{Seed: 43, Patients: 5})
	paths := []string{"Patient/pat-001", "Patient/pat-005", "Observation/obs-003-6", "Claim/claim-005-2", "Practitioner/prac-2", "Encounter/enc-004-2"}
	differs := 0
	for _, p := range paths {
		ra, rb, rc := a.do("GET", p, ""), b.do("GET", p, ""), c.do("GET", p, "")
		if ra.status != 200 || rc.status != 200 {
			t.Fatalf("%s: status %d / %d", p, ra.status, rc.status)
		}
		if !bytes.Equal(ra.raw, rb.raw) {
			t.Errorf("%s differs between two servers with the same seed", p)
		}
		if !bytes.Equal(ra.raw, rc.raw) {
			differs++
		}
	}
	if differs == 0 {
		t.Error("a different seed produced identical data")
	}
	if got := strings.Join(c.s.PatientIDs(), ","); got != "pat-001,pat-002,pat-003,pat-004,pat-005" {
		t.Errorf("PatientIDs = %s", got)
	}
	// Servers built from the same data set do not share writes.
	if r := a.do(http.MethodDelete, "Patient/pat-001", ""); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	a.do(http.MethodPost, "Patient", newPatient)
	b.get("Patient/pat-001", http.StatusOK)
	if n := len(b.s.PatientIDs()); n != 5 {
		t.Errorf("a write to one server changed another: %d patients", n)
	}
	if n := len(New(Options{Seed: 42, Patients: 5}).PatientIDs()); n != 5 {
		t.Errorf("a write changed the cached data set: %d patients", n)
	}
}
