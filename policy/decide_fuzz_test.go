package policy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/fhirwall/fhirwall/fhir"
)

// FuzzScopeParse checks that ParseScope never panics and that an accepted
// scope survives a round trip through its canonical form unchanged.
func FuzzScopeParse(f *testing.F) {
	for _, s := range []string{"patient/Observation.read", "system/Claim.cruds", "user/*.rs?category=a|b,c&status=final", "openid", "launch/patient"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil || !sc.IsSMART() {
			return
		}
		again, err := ParseScope(sc.String())
		if err != nil || again.String() != sc.String() {
			t.Fatalf("%q -> %q -> %q (%v)", s, sc.String(), again.String(), err)
		}
	})
}

// FuzzDecide checks that classification and decision never panic, that a
// refusal always carries a reason, and that an allowed patient/ search is
// always narrowed to the token patient.
func FuzzDecide(f *testing.F) {
	f.Add("GET", "/Observation", "code=a&_include=Observation:subject:Patient", "", "")
	f.Add("POST", "/", "", "application/fhir+json", `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Patient/9"}}]}`)
	f.Add("PUT", "/Observation/1", "", "application/fhir+json", `{"resourceType":"Observation","id":"1","subject":{"reference":"Patient/123"}}`)
	subject := &Subject{Scopes: authzScopes(f, "patient/*.cruds"), Patient: "123", Operations: []string{"everything"}}
	f.Fuzz(func(t *testing.T, method, path, query, ct, body string) {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		req, err := fhir.Classify(method, path, query, h, []byte(body))
		if err != nil {
			return
		}
		d := Decide(subject, req)
		if !d.Allow && d.Reason == "" {
			t.Fatalf("refusal without a reason: %+v", d)
		}
		if d.Allow && req.Interaction == fhir.InteractionSearchType && !IsPatientReferenceType(req.ResourceType) {
			q := d.NarrowQuery("")
			if !strings.Contains(q, "Patient%2F123") && q != "_id=123" && !strings.HasPrefix(q, "_id=123&") {
				t.Fatalf("patient search not narrowed: %s %s -> %q", path, query, q)
			}
		}
	})
}
