package fhir

import (
	"slices"
	"testing"
)

func TestReferenceTargets(t *testing.T) {
	for _, c := range []struct {
		base, param string
		want        []string
	}{
		{"Claim", "patient", []string{"Patient"}},
		{"Observation", "subject", []string{"Device", "Group", "Location", "Patient"}},
		{"Encounter", "subject", []string{"Group", "Patient"}},
		{"Observation", "patient", []string{"Patient"}},
	} {
		got, ok := ReferenceTargets(c.base, c.param)
		if !ok || !slices.Equal(got, c.want) {
			t.Errorf("%s:%s targets %v %v, want %v", c.base, c.param, got, ok, c.want)
		}
	}
	// A parameter of any target type (Provenance.target) can point to
	// every resource type but Parameters.
	got, ok := ReferenceTargets("Provenance", "target")
	if !ok || len(got) != len(ResourceTypes())-1 || slices.Contains(got, "Parameters") || !slices.Contains(got, "Patient") {
		t.Errorf("Provenance:target targets %d types %v", len(got), ok)
	}
	// Not reference parameters, or not of that type.
	for _, c := range [][2]string{{"Claim", "created"}, {"Claim", "subject"}, {"Patient", "nonsense"}, {"Nonsense", "patient"}, {"", ""}} {
		if got, ok := ReferenceTargets(c[0], c[1]); ok {
			t.Errorf("%s:%s has targets %v", c[0], c[1], got)
		}
	}
	// Every target named is an R4 resource type.
	for k, ts := range referenceTargets() {
		for _, ty := range ts {
			if !IsResourceType(ty) {
				t.Errorf("%s targets %q, not a resource type", k, ty)
			}
		}
	}
}
