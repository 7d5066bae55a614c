package masking

import (
	"errors"
	"strings"
	"testing"
)

func TestCompileRules(t *testing.T) {
	key := []byte("0123456789abcdef")
	tests := []struct {
		spec    RuleSpec
		noKey   bool
		wantErr string // "" = valid
	}{
		{spec: RuleSpec{Path: "Patient.telecom"}},
		{spec: RuleSpec{Path: "Claim.diagnosis"}},
		{spec: RuleSpec{Path: "Patient.address.line"}},
		{spec: RuleSpec{Path: "Patient.identifier.where(system='http://hl7.org/fhir/sid/us-ssn')"}},
		{spec: RuleSpec{Path: "Patient.identifier.where(system = 'urn:x').value", Action: "hash"}},
		{spec: RuleSpec{Path: "Patient.birthDate", Action: "generalize"}},
		{spec: RuleSpec{Path: "Patient.name.family", Action: "redact", Replacement: "X"}},
		{spec: RuleSpec{Path: "Patient.gender", Action: "redact"}},
		{spec: RuleSpec{Path: "Observation.value"}},
		{spec: RuleSpec{Path: "Observation.valueQuantity.value"}},
		{spec: RuleSpec{Path: "HumanName"}},
		{spec: RuleSpec{Path: "Reference.display"}},
		{spec: RuleSpec{Path: "Address.postalCode", Action: "generalize"}},
		{spec: RuleSpec{Path: "Bundle.entry.resource"}},
		{spec: RuleSpec{Path: "Identifier.where(system='http://hl7.org/fhir/sid/us-ssn')"}},
		{spec: RuleSpec{Path: "Identifier.where(system='urn:x').value", Action: "hash"}},
		{spec: RuleSpec{Path: "Identifier.where(nope='x')"}, wantErr: `"nope" is not a primitive element`},
		{spec: RuleSpec{Path: "Patient.where(id='x').telecom"}, wantErr: "cannot follow a resource type"},
		{spec: RuleSpec{Path: "Patient.contact.name"}},
		{spec: RuleSpec{Path: ""}, wantErr: "empty path"},
		{spec: RuleSpec{Path: "Patient"}, wantErr: "not the whole resource"},
		{spec: RuleSpec{Path: "Patient.telecon"}, wantErr: `Patient has no element "telecon"`},
		{spec: RuleSpec{Path: "Patient.address.lines"}, wantErr: `Patient.address has no element "lines"`},
		{spec: RuleSpec{Path: "Patientx.telecom"}, wantErr: "neither an R4 resource type nor an R4 data type"},
		{spec: RuleSpec{Path: "Patient.birthDate.year"}, wantErr: "primitive"},
		{spec: RuleSpec{Path: "Patient.telecom", Action: "delete"}, wantErr: "unknown action"},
		{spec: RuleSpec{Path: "Patient.telecom", Action: "redact"}, wantErr: "primitive string element"},
		{spec: RuleSpec{Path: "HumanName", Action: "hash"}, wantErr: "primitive string element"},
		{spec: RuleSpec{Path: "Patient.active", Action: "redact"}, wantErr: "primitive string element"},
		{spec: RuleSpec{Path: "Patient.deceased", Action: "generalize"}, wantErr: "primitive string element"},
		{spec: RuleSpec{Path: "Observation.value.value"}, wantErr: "choice element"},
		{spec: RuleSpec{Path: "Patient.identifier.value", Action: "hash"}, noKey: true, wantErr: "HashKey"},
		{spec: RuleSpec{Path: "Patient.identifier.where(foo='x')"}, wantErr: `"foo" is not a primitive element`},
		{spec: RuleSpec{Path: "Patient.identifier.where(system=x)"}, wantErr: "quoted"},
		{spec: RuleSpec{Path: "Patient.identifier.where(system='x'"}, wantErr: "missing ')'"},
		{spec: RuleSpec{Path: "Patient.birthDate.where(system='x')"}, wantErr: "has none"},
		{spec: RuleSpec{Path: "Bundle.entry.resource.id"}, wantErr: "nested resource"},
		{spec: RuleSpec{Path: "Patient..telecom"}, wantErr: "not an element name"},
		{spec: RuleSpec{Path: "Patient.telecom", Replacement: "x"}, wantErr: "only meaningful with action redact"},
	}
	for _, tc := range tests {
		t.Run(tc.spec.Path+"/"+tc.spec.Action, func(t *testing.T) {
			opts := Options{HashKey: key}
			if tc.noKey {
				opts.HashKey = nil
			}
			_, err := Compile(map[string][]RuleSpec{"p": {tc.spec}}, opts)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && err == nil:
				t.Fatalf("compiled; want error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

// Every bad rule is reported, with its profile and index, in order.
func TestCompileReportsEveryRule(t *testing.T) {
	_, err := Compile(map[string][]RuleSpec{
		"b": {{Path: "Patient.telecom"}, {Path: "Patient.nope"}, {Path: "Nope.x"}},
		"a": {{Path: "Claim.nope"}},
		"c": {{Path: "Claim.diagnosis"}},
	}, Options{})
	re := RuleErrors(err)
	var got []string
	for _, e := range re {
		got = append(got, e.Profile+"#"+string(rune('0'+e.Index)))
	}
	if strings.Join(got, ",") != "a#0,b#1,b#2" {
		t.Fatalf("rule errors = %v (%v)", got, err)
	}
	var target *RuleError
	if !errors.As(err, &target) || target.Profile != "a" {
		t.Fatalf("errors.As = %v", target)
	}
}

func TestCompileOptions(t *testing.T) {
	for _, o := range []Options{
		{UpstreamBase: "http://up"},
		{UpstreamBase: "ftp://up", PublicBase: "http://pub"},
		{UpstreamBase: "up/fhir", PublicBase: "http://pub"},
	} {
		if _, err := Compile(nil, o); err == nil {
			t.Errorf("Compile(%+v) accepted bad link options", o)
		}
	}
}

func TestRewriterProfiles(t *testing.T) {
	s := testSet(t, testOptions)
	if _, err := s.Rewriter([]string{"contact", "nope"}, nil); err == nil {
		t.Fatal("unknown profile accepted")
	}
	a, err := s.Rewriter([]string{"contact", "hash", "contact"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Rewriter([]string{"hash", "contact"}, nil)
	if a.plan != b.plan || len(a.plan.rules) != 4 {
		t.Fatalf("plans not shared or profiles not deduplicated: %d rules", len(a.plan.rules))
	}
}
