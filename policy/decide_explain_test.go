package policy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// authzUpdate regenerates the golden files of this file's tests. It is not
// named "update" so as not to collide with other tests of the package.
var authzUpdate = flag.Bool("update-authz", false, "rewrite testdata/authz golden files")

// TestExplainGolden pins the explanation `fhirwall policy explain` prints
// for representative decisions; review testdata/authz/explain.golden by eye
// after `go test ./policy -run TestExplainGolden -update-authz`.
func TestExplainGolden(t *testing.T) {
	cases := []decideCase{
		{name: "patient search with include", scopes: []string{"patient/Observation.rs", "patient/Practitioner.r"}, patient: authzPatient,
			method: "GET", path: "/Observation", query: "code=4548-4&_include=Observation:performer:Practitioner"},
		{name: "granular search", scopes: []string{authzObsLab}, patient: authzPatient, method: "GET", path: "/Observation"},
		{name: "read outside compartment", scopes: []string{"patient/Patient.r"}, patient: authzPatient, method: "GET", path: "/Patient/999"},
		{name: "has oracle", scopes: []string{"system/Patient.rs"}, method: "GET", path: "/Patient", query: "_has:Observation:patient:code=1234-5"},
		{name: "patient update", scopes: []string{"patient/Observation.u"}, patient: authzPatient, method: "PUT", path: "/Observation/o1",
			body: `{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/123"}}`},
		{name: "operation denied", scopes: []string{"user/*.rs"}, method: "GET", path: "/Patient/1/$everything"},
		{name: "transaction", scopes: []string{"system/Claim.cruds"}, method: "POST", path: "/",
			body: `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Claim/1"}},{"request":{"method":"DELETE","url":"Coverage/2"}}]}`},
	}
	var b strings.Builder
	for _, tc := range cases {
		d, req := runDecide(t, tc)
		fmt.Fprintf(&b, "== %s: %s %s?%s (scopes: %s)\n", tc.name, tc.method, tc.path, tc.query, strings.Join(tc.scopes, " "))
		b.WriteString(Explain(d, req))
		b.WriteByte('\n')
	}
	golden := filepath.Join("testdata", "authz", "explain.golden")
	if *authzUpdate {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update-authz to create it)", err)
	}
	if b.String() != string(want) {
		t.Errorf("Explain output differs from %s; got:\n%s", golden, b.String())
	}
}
