package policy

import (
	"net/http"
	"slices"
	"testing"

	"github.com/fhirwall/fhirwall/fhir"
)

// authzChecker is the masking package's checker contract, restated so
// that the compiler proves ResourceCheck satisfies it without importing
// masking.
type authzChecker interface {
	CheckResource(resourceType string, raw []byte, where int) (verdict int, err error)
}

var _ authzChecker = (*ResourceCheck)(nil)

func decideFor(t testing.TB, scopes []string, patient, method, path, query string) Decision {
	t.Helper()
	req, err := fhir.Classify(method, path, query, http.Header{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Decide(&Subject{Scopes: authzScopes(t, scopes...), Patient: patient}, req)
	if !d.Allow {
		t.Fatalf("refused: %s %s", d.Reason, d.Detail)
	}
	return d
}

const (
	authzObsMine      = `{"resourceType":"Observation","id":"1","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"subject":{"reference":"Patient/123"},"status":"final"}`
	authzObsOther     = `{"resourceType":"Observation","id":"2","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],"subject":{"reference":"Patient/999"}}`
	authzObsVital     = `{"resourceType":"Observation","id":"3","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"subject":{"reference":"Patient/123"}}`
	authzObsPerformed = `{"resourceType":"Observation","id":"4","subject":{"reference":"Group/1"},"performer":[{"reference":"Patient/123"}]}`
	authzPatMine      = `{"resourceType":"Patient","id":"123"}`
	authzPatOther     = `{"resourceType":"Patient","id":"999"}`
	authzPractitioner = `{"resourceType":"Practitioner","id":"7"}`
	authzTask         = `{"resourceType":"Task","id":"8","for":{"reference":"Patient/123"}}`
	authzEncOther     = `{"resourceType":"Encounter","id":"5","subject":{"reference":"Patient/999"}}`
)

func TestResourceCheckSearchEntries(t *testing.T) {
	d := decideFor(t, []string{"patient/Observation.rs", "patient/Patient.rs", "patient/Practitioner.r"}, authzPatient,
		"GET", "/Observation", "_include=Observation:subject:Patient&_include=Observation:performer:Practitioner")
	c := d.Check
	tests := []struct {
		name, typ, raw string
		want           int
	}{
		{"bundle container", "Bundle", `{"resourceType":"Bundle","type":"searchset"}`, CheckKeep},
		{"outcome", "OperationOutcome", `{"resourceType":"OperationOutcome"}`, CheckKeep},
		{"own observation", "Observation", authzObsMine, CheckKeep},
		{"observation of another patient", "Observation", authzObsOther, CheckDrop},
		{"performed by the patient", "Observation", authzObsPerformed, CheckKeep},
		{"included own patient", "Patient", authzPatMine, CheckKeep},
		{"included other patient", "Patient", authzPatOther, CheckDrop},
		{"included reference data", "Practitioner", authzPractitioner, CheckKeep},
		{"type without scope", "Encounter", authzEncOther, CheckDrop},
	}
	for _, tt := range tests {
		v, err := c.CheckResource(tt.typ, []byte(tt.raw), 1)
		if err != nil || v != tt.want {
			t.Errorf("%s: verdict %d err %v, want %d", tt.name, v, err, tt.want)
		}
	}
	if got := c.Patients(); !slices.Equal(got, []string{"123"}) {
		t.Errorf("patients disclosed %q", got)
	}
	if c.Dropped() != 3 {
		t.Errorf("dropped %d", c.Dropped())
	}
}

// TestResourceCheckRead: a read outside the compartment refuses the whole
// response, and the decision asks for the answer a missing resource gets.
func TestResourceCheckRead(t *testing.T) {
	d := decideFor(t, []string{"patient/*.rs"}, authzPatient, "GET", "/Observation/2", "")
	if v, _ := d.Check.CheckResource("Observation", []byte(authzObsOther), 0); v != CheckRefuse {
		t.Errorf("verdict %d, want refuse", v)
	}
	if !d.NotFoundOnRefusal {
		t.Error("read must not be an existence oracle")
	}
	d = decideFor(t, []string{"patient/*.rs"}, authzPatient, "GET", "/Observation/1", "")
	if v, _ := d.Check.CheckResource("Observation", []byte(authzObsMine), 0); v != CheckKeep {
		t.Errorf("verdict %d, want keep", v)
	}
	d = decideFor(t, []string{"patient/*.rs"}, authzPatient, "GET", "/Observation/1", "")
	if v, _ := d.Check.CheckResource("Task", []byte(authzTask), 0); v != CheckRefuse {
		t.Errorf("non-compartment type: verdict %d, want refuse", v)
	}
	// A resource that claims another type than the one it is checked as.
	if v, err := d.Check.CheckResource("Observation", []byte(authzPatMine), 0); v != CheckRefuse || err == nil {
		t.Errorf("type confusion: %d %v", v, err)
	}
	// An array holding a resource of the agent's patient is not that
	// resource.
	if v, err := d.Check.CheckResource("Observation", []byte(`[`+authzObsMine+`]`), 0); v != CheckRefuse || err == nil {
		t.Errorf("array for a resource: %d %v", v, err)
	}
	if v, err := d.Check.CheckResource("Observation", []byte(`{"resourceType":`), 0); v != CheckRefuse || err == nil {
		t.Errorf("invalid JSON: %d %v", v, err)
	}
	// A read's Bundle is not a container: a stored Bundle needs its own scope.
	if v, _ := d.Check.CheckResource("Bundle", []byte(`{"resourceType":"Bundle","type":"collection"}`), 0); v != CheckRefuse {
		t.Errorf("stored Bundle under patient scope: %d", v)
	}
}

func TestResourceCheckGranular(t *testing.T) {
	d := decideFor(t, []string{authzObsLab}, authzPatient, "GET", "/Observation", "")
	for _, tt := range []struct {
		raw  string
		want int
	}{{authzObsMine, CheckKeep}, {authzObsVital, CheckDrop}, {authzObsOther, CheckDrop}} {
		if v, _ := d.Check.CheckResource("Observation", []byte(tt.raw), 1); v != tt.want {
			t.Errorf("%s: %d, want %d", tt.raw, v, tt.want)
		}
	}
}

func TestResourceCheckSystemDisclosure(t *testing.T) {
	d := decideFor(t, []string{"system/*.rs"}, "", "GET", "/Observation", "")
	for _, raw := range []string{authzObsMine, authzObsOther, authzEncOther} {
		typ := "Observation"
		if raw == authzEncOther {
			typ = "Encounter"
		}
		if v, _ := d.Check.CheckResource(typ, []byte(raw), 1); v != CheckKeep {
			t.Errorf("system scope dropped %s", raw)
		}
	}
	if got := d.Check.Patients(); !slices.Equal(got, []string{"123", "999"}) {
		t.Errorf("patients %q", got)
	}
}

func TestScopeQueryMatches(t *testing.T) {
	res := []byte(`{"resourceType":"Observation","status":"final",
	  "category":[{"coding":[{"system":"s1","code":"laboratory"}]},{"coding":[{"code":"nosys"}]}],
	  "code":{"coding":[{"system":"http://loinc.org","code":"1234-5"}]},
	  "meta":{"tag":[{"system":"t","code":"x"}],"security":[{"system":"v","code":"R"}]}}`)
	tests := []struct {
		q    string
		want bool
	}{
		{"category=s1|laboratory", true},
		{"category=laboratory", true},
		{"category=s2|laboratory", false},
		{"category=s1|", true},
		{"category=|nosys", true},
		{"category=|laboratory", false},
		{"category=vital-signs,laboratory", true},
		{"code=http://loinc.org|1234-5", true},
		{"code=http://loinc.org|9", false},
		{"_tag=t|x", true},
		{"_security=v|R", true},
		{"_security=v|N", false},
		{"status=final", true},
		{"status=amended", false},
		{"status=final&category=vital-signs", false},
	}
	for _, tt := range tests {
		s, err := ParseScope("user/Observation.rs?" + tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if got := scopeQueryMatches(s.Query, res); got != tt.want {
			t.Errorf("%s: %v", tt.q, got)
		}
	}
	// Absent elements never match: what cannot be evaluated narrows to nothing.
	s, _ := ParseScope("user/Observation.rs?category=laboratory")
	if scopeQueryMatches(s.Query, []byte(`{"resourceType":"Observation","category":"laboratory"}`)) {
		t.Error("a malformed category matched")
	}
}

// TestResourceCheckPlacements: contained resources need a readable type but
// no compartment link of their own; a failing one is dropped, never a
// refusal; nested Bundle envelopes and entry outcomes are kept.
func TestResourceCheckPlacements(t *testing.T) {
	d := decideFor(t, []string{"patient/Observation.rs", "patient/Practitioner.r"}, authzPatient, "GET", "/Observation/1", "")
	c := d.Check
	contained := []struct {
		typ, raw string
		want     int
	}{
		{"Practitioner", `{"resourceType":"Practitioner","id":"p"}`, CheckKeep},
		{"Observation", `{"resourceType":"Observation","id":"c1"}`, CheckKeep},
		{"Patient", `{"resourceType":"Patient","id":"c2"}`, CheckDrop},
		{"Task", `{"resourceType":"Task","id":"c3"}`, CheckDrop},
	}
	for _, tt := range contained {
		if v, err := c.CheckResource(tt.typ, []byte(tt.raw), WhereContained); err != nil || v != tt.want {
			t.Errorf("contained %s: %d %v, want %d", tt.typ, v, err, tt.want)
		}
	}
	if v, _ := c.CheckResource("Observation", []byte(authzObsOther), WhereTopLevel); v != CheckRefuse {
		t.Errorf("top-level out of compartment: %d", v)
	}
	if v, _ := c.CheckResource("Observation", []byte(authzObsOther), WhereParameters); v != CheckDrop {
		t.Errorf("parameters resource out of compartment: %d", v)
	}
	if v, _ := c.CheckResource("Bundle", []byte(`{"resourceType":"Bundle","type":"searchset"}`), WhereBundleEntry); v != CheckKeep {
		t.Errorf("nested bundle envelope: %d", v)
	}
	if v, _ := c.CheckResource("OperationOutcome", []byte(`{"resourceType":"OperationOutcome"}`), WhereEntryOutcome); v != CheckKeep {
		t.Errorf("entry outcome: %d", v)
	}
}

// TestResourceCheckPrefetch: the check a write decision carries accepts the
// current version under the scope that grants the write, even without read.
func TestResourceCheckPrefetch(t *testing.T) {
	req, err := fhir.Classify("DELETE", "/Observation/1", "", http.Header{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := Decide(&Subject{Scopes: authzScopes(t, "patient/Observation.d"), Patient: authzPatient}, req)
	if !d.Allow || !d.Prefetch {
		t.Fatalf("%+v", d)
	}
	if v, _ := d.Check.CheckResource("Observation", []byte(authzObsMine), WhereTopLevel); v != CheckKeep {
		t.Errorf("own observation: %d", v)
	}
	if v, _ := d.Check.CheckResource("Observation", []byte(authzObsOther), WhereTopLevel); v != CheckRefuse {
		t.Errorf("other patient's observation: %d", v)
	}
}
