package fhirsample

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzServeHTTP checks that no request makes the server panic or answer
// with something other than a FHIR JSON body.
func FuzzServeHTTP(f *testing.F) {
	seeds := []struct{ method, target, body string }{
		{"GET", "/Observation?patient=pat-001&_include=Observation:subject&_count=2", ""},
		{"GET", "/Patient?birthdate=ge1980&name:contains=a&_revinclude:iterate=Claim:patient", ""},
		{"GET", "/Patient/pat-001/$everything", ""},
		{"PUT", "/Patient/pat-001", `{"resourceType":"Patient","id":"pat-001"}`},
		{"POST", "/", `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`},
		{"POST", "/", `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?_id=x"}}]}`},
		{"DELETE", "/Claim/claim-001-1", ""},
		{"GET", "/Patient/pat-001/Observation?_getpagesoffset=9223372036854775807&_count=5", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.body)
	}
	srv := New(Options{Seed: 1, Patients: 3, BaseURL: "http://fuzz.example/fhir"})
	f.Fuzz(func(t *testing.T, method, target, body string) {
		switch method {
		case "GET", "POST", "PUT", "DELETE", "HEAD":
		default:
			method = "GET"
		}
		if !strings.HasPrefix(target, "/") {
			return
		}
		req, err := http.NewRequest(method, "http://fuzz.example"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
		if rec.Body.Len() > 0 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: invalid JSON body %q", method, target, rec.Body.Bytes())
		}
		if rec.Code >= 400 && !strings.Contains(rec.Body.String(), `"OperationOutcome"`) {
			t.Fatalf("%s %s: error %d without OperationOutcome", method, target, rec.Code)
		}
	})
}
