package fhirsample

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

const newPatient = `{"resourceType":"Patient","id":"ignored","name":[{"family":"Newcomb","given":["Testa"]}],"gender":"female","birthDate":"1990-02-03"}`

// TestWriteLifecycle walks one resource through create, read, update,
// vread, conditional update, delete and history, in order.
func TestWriteLifecycle(t *testing.T) {
	f := newFixture(t, Options{Seed: 5})
	var id string
	steps := []struct {
		name    string
		method  string
		path    func() string
		body    func() string
		headers []string
		status  int
		check   func(t *testing.T, r reply)
	}{
		{"create", "POST", lit("Patient"), lit(newPatient), nil, 201, func(t *testing.T, r reply) {
			id = str(r.body, "id")
			if id == "" || id == "ignored" {
				t.Fatalf("server kept or lost the id: %q", id)
			}
			if loc := r.header.Get("Location"); loc != f.base+"/Patient/"+id+"/_history/1" {
				t.Errorf("Location %q", loc)
			}
			if r.header.Get("ETag") != `W/"1"` || str(r.body, "meta.versionId") != "1" {
				t.Errorf("ETag %q, versionId %q", r.header.Get("ETag"), str(r.body, "meta.versionId"))
			}
		}},
		{"read", "GET", func() string { return "Patient/" + id }, lit(""), nil, 200, func(t *testing.T, r reply) {
			if str(r.body, "name.0.family") != "Newcomb" {
				t.Errorf("read back %s", r.raw)
			}
		}},
		{"search finds it", "GET", lit("Patient?name=newc"), lit(""), nil, 200, func(t *testing.T, r reply) {
			if total(r.body) != 1 {
				t.Errorf("total %d", total(r.body))
			}
		}},
		{"update", "PUT", func() string { return "Patient/" + id }, func() string {
			return strings.Replace(strings.Replace(newPatient, "ignored", id, 1), "Newcomb", "Newcombe", 1)
		}, []string{"If-Match", `W/"1"`}, 200, func(t *testing.T, r reply) {
			if str(r.body, "meta.versionId") != "2" || r.header.Get("ETag") != `W/"2"` || str(r.body, "name.0.family") != "Newcombe" {
				t.Errorf("after update: %s", r.raw)
			}
			if loc := r.header.Get("Location"); loc != f.base+"/Patient/"+id+"/_history/2" {
				t.Errorf("Location %q", loc)
			}
		}},
		{"stale If-Match", "PUT", func() string { return "Patient/" + id }, func() string {
			return strings.Replace(newPatient, "ignored", id, 1)
		}, []string{"If-Match", `W/"1"`}, 412, nil},
		{"id mismatch", "PUT", func() string { return "Patient/" + id }, lit(newPatient), nil, 400, nil},
		{"type mismatch", "PUT", func() string { return "Observation/" + id }, func() string {
			return strings.Replace(newPatient, "ignored", id, 1)
		}, nil, 400, nil},
		{"vread 1", "GET", func() string { return "Patient/" + id + "/_history/1" }, lit(""), nil, 200, func(t *testing.T, r reply) {
			if str(r.body, "name.0.family") != "Newcomb" || str(r.body, "meta.versionId") != "1" {
				t.Errorf("vread 1 gave %s", r.raw)
			}
		}},
		{"minimal update", "PUT", func() string { return "Patient/" + id }, func() string {
			return strings.Replace(newPatient, "ignored", id, 1)
		}, []string{"Prefer", "return=minimal"}, 200, func(t *testing.T, r reply) {
			if len(r.raw) != 0 || r.header.Get("ETag") != `W/"3"` {
				t.Errorf("return=minimal: body %q, ETag %q", r.raw, r.header.Get("ETag"))
			}
		}},
		{"delete", "DELETE", func() string { return "Patient/" + id }, lit(""), nil, 204, nil},
		{"read deleted", "GET", func() string { return "Patient/" + id }, lit(""), nil, 410, nil},
		{"delete again", "DELETE", func() string { return "Patient/" + id }, lit(""), nil, 204, nil},
		{"vread deletion", "GET", func() string { return "Patient/" + id + "/_history/4" }, lit(""), nil, 410, nil},
		{"history", "GET", func() string { return "Patient/" + id + "/_history" }, lit(""), nil, 200, func(t *testing.T, r reply) {
			es := entries(r.body)
			if str(r.body, "type") != "history" || total(r.body) != 4 || len(es) != 4 {
				t.Fatalf("history: %s", r.raw)
			}
			wantMethods := []string{"DELETE", "PUT", "PUT", "POST"}
			for i, e := range es {
				if str(e, "request.method") != wantMethods[i] {
					t.Errorf("entry %d: method %q, want %s", i, str(e, "request.method"), wantMethods[i])
				}
			}
			if es[0]["resource"] != nil || str(es[1], "resource.meta.versionId") != "3" || str(es[3], "response.status") != "201 Created" {
				t.Errorf("history entries out of order or wrong: %s", r.raw)
			}
		}},
		{"search skips deleted", "GET", lit("Patient?name=newc"), lit(""), nil, 200, func(t *testing.T, r reply) {
			if total(r.body) != 0 {
				t.Errorf("total %d", total(r.body))
			}
		}},
		{"update as create", "PUT", lit("Patient/chosen-id"), func() string {
			return strings.Replace(newPatient, "ignored", "chosen-id", 1)
		}, nil, 201, func(t *testing.T, r reply) {
			if r.header.Get("Location") != f.base+"/Patient/chosen-id/_history/1" {
				t.Errorf("Location %q", r.header.Get("Location"))
			}
		}},
		{"bad id", "PUT", lit("Patient/bad_id!"), lit(`{"resourceType":"Patient","id":"bad_id!"}`), nil, 400, nil},
		{"create bad json", "POST", lit("Patient"), lit(`{"resourceType":`), nil, 400, nil},
		{"create wrong type", "POST", lit("Observation"), lit(newPatient), nil, 400, nil},
		{"create no body", "POST", lit("Observation"), lit(""), nil, 400, nil},
		{"create not an object", "POST", lit("Observation"), lit(`[1,2]`), nil, 400, nil},
		{"history unknown", "GET", lit("Patient/nope/_history"), lit(""), nil, 404, nil},
	}
	for _, st := range steps {
		r := f.do(st.method, st.path(), st.body(), st.headers...)
		if r.status != st.status {
			t.Fatalf("%s: status %d, want %d: %s", st.name, r.status, st.status, r.raw)
		}
		if st.status >= 400 {
			isOutcome(t, r)
		}
		if st.check != nil {
			t.Run(st.name, func(t *testing.T) { st.check(t, r) })
		}
	}
	ids := f.s.PatientIDs()
	if len(ids) != 21 || ids[20] != "chosen-id" {
		t.Errorf("PatientIDs after writes: %v", ids)
	}
}

func lit(s string) func() string { return func() string { return s } }

func TestBatch(t *testing.T) {
	f := newFixture(t, Options{Seed: 5})
	batch := `{"resourceType":"Bundle","type":"batch","entry":[
	 {"request":{"method":"GET","url":"Patient/pat-001"}},
	 {"request":{"method":"GET","url":"Patient/nope"}},
	 {"resource":` + newPatient + `,"request":{"method":"POST","url":"Patient"}},
	 {"request":{"method":"GET","url":"Observation?patient=pat-001&category=laboratory"}},
	 {"request":{"method":"DELETE","url":"` + f.base + `/Coverage/cov-002"}},
	 {"request":{"method":"PATCH","url":"Patient/pat-001"}},
	 {"request":{"method":"GET","url":"http://elsewhere.example/fhir/Patient/pat-001"}}
	]}`
	r := f.do(http.MethodPost, "", batch)
	if r.status != 200 || str(r.body, "type") != "batch-response" {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	want := []string{"200 OK", "404 Not Found", "201 Created", "200 OK", "204 No Content", "405 Method Not Allowed", "400 Bad Request"}
	es := entries(r.body)
	if len(es) != len(want) {
		t.Fatalf("%d entries, want %d", len(es), len(want))
	}
	for i, e := range es {
		if got := str(e, "response.status"); got != want[i] {
			t.Errorf("entry %d: status %q, want %q", i, got, want[i])
		}
	}
	if str(es[1], "response.outcome.resourceType") != "OperationOutcome" {
		t.Errorf("failed entry has no outcome: %v", es[1])
	}
	if loc := str(es[2], "response.location"); !strings.HasPrefix(loc, f.base+"/Patient/") || str(es[2], "fullUrl") == "" {
		t.Errorf("created entry: location %q, fullUrl %q", loc, str(es[2], "fullUrl"))
	}
	if total(es[3]["resource"].(map[string]any)) != 3 {
		t.Errorf("search entry: %v", es[3]["resource"])
	}
	// The batch was not atomic: the successful entries took effect.
	f.get("Coverage/cov-002", http.StatusGone)
	if n := len(f.s.PatientIDs()); n != 21 {
		t.Errorf("%d patients after the batch, want 21", n)
	}
}

func TestTransaction(t *testing.T) {
	f := newFixture(t, Options{Seed: 5})
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"request":{"method":"GET","url":"Patient?_id=pat-002"}},
	 {"fullUrl":"urn:uuid:obs","resource":{"resourceType":"Observation","status":"final","code":{"text":"note"},
	   "subject":{"reference":"urn:uuid:pat"}},"request":{"method":"POST","url":"Observation"}},
	 {"fullUrl":"urn:uuid:pat","resource":` + newPatient + `,"request":{"method":"POST","url":"Patient"}},
	 {"resource":{"resourceType":"Patient","id":"pat-003","gender":"other"},"request":{"method":"PUT","url":"Patient/pat-003"}},
	 {"request":{"method":"DELETE","url":"Coverage/cov-003"}}
	]}`
	r := f.do(http.MethodPost, "", tx)
	if r.status != 200 || str(r.body, "type") != "transaction-response" {
		t.Fatalf("status %d: %s", r.status, r.raw)
	}
	es := entries(r.body)
	want := []string{"200 OK", "201 Created", "201 Created", "200 OK", "204 No Content"}
	for i, e := range es {
		if str(e, "response.status") != want[i] {
			t.Errorf("entry %d: %q, want %q", i, str(e, "response.status"), want[i])
		}
	}
	patRef := strings.TrimPrefix(str(es[2], "fullUrl"), f.base+"/")
	if !strings.HasPrefix(patRef, "Patient/") || str(es[1], "resource.subject.reference") != patRef {
		t.Fatalf("urn:uuid reference not resolved: patient %q, subject %q", patRef, str(es[1], "resource.subject.reference"))
	}
	if b := f.get("Observation?subject="+patRef, http.StatusOK); total(b) != 1 {
		t.Errorf("the new Observation is not searchable by its new subject: total %d", total(b))
	}
	if str(f.get("Patient/pat-003", http.StatusOK), "gender") != "other" {
		t.Error("PUT in the transaction did not apply")
	}
	f.get("Coverage/cov-003", http.StatusGone)
}

// TestTransactionAtomic checks that a transaction with one failing entry
// changes nothing, whatever the failing entry's position.
func TestTransactionAtomic(t *testing.T) {
	good := `{"resource":` + newPatient + `,"request":{"method":"POST","url":"Patient"}},
	 {"resource":{"resourceType":"Patient","id":"pat-004","gender":"other"},"request":{"method":"PUT","url":"Patient/pat-004"}},
	 {"request":{"method":"DELETE","url":"Patient/pat-005"}}`
	failing := []struct {
		name, entry string
		status      int
	}{
		{"id mismatch", `{"resource":{"resourceType":"Patient","id":"x"},"request":{"method":"PUT","url":"Patient/pat-006"}}`, 400},
		{"stale If-Match", `{"resource":{"resourceType":"Patient","id":"pat-006"},"request":{"method":"PUT","url":"Patient/pat-006","ifMatch":"W/\"9\""}}`, 412},
		{"read of unknown", `{"request":{"method":"GET","url":"Patient/nope"}}`, 404},
		{"unknown type", `{"resource":{"resourceType":"Medication"},"request":{"method":"POST","url":"Medication"}}`, 404},
		{"no request", `{"resource":{"resourceType":"Patient"}}`, 400},
	}
	for _, tt := range failing {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, Options{Seed: 5})
			for _, entries := range []string{good + "," + tt.entry, tt.entry + "," + good} {
				r := f.do(http.MethodPost, "", `{"resourceType":"Bundle","type":"transaction","entry":[`+entries+`]}`)
				if r.status != tt.status {
					t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.raw)
				}
				isOutcome(t, r)
				if n := len(f.s.PatientIDs()); n != 20 {
					t.Errorf("%d patients after a failed transaction", n)
				}
				if g := str(f.get("Patient/pat-004", http.StatusOK), "meta.versionId"); g != "1" {
					t.Errorf("pat-004 is at version %s", g)
				}
				f.get("Patient/pat-005", http.StatusOK)
			}
		})
	}
}

func TestBundleErrors(t *testing.T) {
	f := newFixture(t, Options{Seed: 5})
	tests := []struct{ name, body string }{
		{"not json", `{`},
		{"not a bundle", newPatient},
		{"searchset", `{"resourceType":"Bundle","type":"searchset"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := f.with(t)
			r := f.do(http.MethodPost, "", tt.body)
			if r.status != 400 {
				t.Fatalf("status %d: %s", r.status, r.raw)
			}
			isOutcome(t, r)
		})
	}
}

// TestConcurrent mixes writers, transactions and readers; run with -race.
func TestConcurrent(t *testing.T) {
	f := newFixture(t, Options{Seed: 5, Patients: 5})
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				var r reply
				switch i % 3 {
				case 0:
					r = f.do(http.MethodPost, "Patient", newPatient)
				case 1:
					r = f.do(http.MethodPost, "", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":`+newPatient+`,"request":{"method":"POST","url":"Patient"}}]}`)
				default:
					r = f.do(http.MethodGet, fmt.Sprintf("Observation?patient=pat-00%d&_include=Observation:subject", 1+w), "")
				}
				if r.status >= 300 {
					errs <- fmt.Sprintf("status %d: %s", r.status, r.raw)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := len(f.s.PatientIDs()); n != 5+4*7 {
		t.Errorf("%d patients, want %d", n, 5+4*7)
	}
}
