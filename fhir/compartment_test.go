package fhir

import (
	"slices"
	"strings"
	"testing"
)

func TestPatientRefs(t *testing.T) {
	tests := []struct {
		name, typ, raw string
		want           []string
		inType         bool
	}{
		{"observation subject and performer", "Observation",
			`{"resourceType":"Observation","subject":{"reference":"Patient/1"},"performer":[{"reference":"Practitioner/9"},{"reference":"Patient/2"}]}`,
			[]string{"1", "2"}, true},
		{"absolute and versioned", "Condition",
			`{"subject":{"reference":"https://x.org/fhir/Patient/7/_history/3"},"asserter":{"reference":"Patient/7"}}`, []string{"7"}, true},
		{"group subject is not a patient", "Observation", `{"subject":{"reference":"Group/1"}}`, nil, true},
		{"contained and logical refs", "Observation",
			`{"subject":{"reference":"#p1"},"performer":[{"identifier":{"value":"x"}},{"reference":"urn:uuid:1"}]}`, nil, true},
		{"nested array path", "Appointment",
			`{"participant":[{"actor":{"reference":"Practitioner/1"}},{"actor":{"reference":"Patient/5"}}]}`, []string{"5"}, true},
		{"deep path", "CarePlan",
			`{"subject":{"reference":"Patient/1"},"activity":[{"detail":{"performer":[{"reference":"Patient/3"}]}}]}`, []string{"1", "3"}, true},
		{"patient itself and links", "Patient", `{"resourceType":"Patient","id":"8","link":[{"other":{"reference":"Patient/9"}}]}`, []string{"8", "9"}, true},
		{"audit event", "AuditEvent", `{"agent":[{"who":{"reference":"Patient/4"}}],"entity":[{"what":{"reference":"Patient/4"}}]}`, []string{"4"}, true},
		{"coverage beneficiary", "Coverage", `{"beneficiary":{"reference":"Patient/2"},"payor":[{"reference":"Organization/1"}]}`, []string{"2"}, true},
		{"query in reference", "Observation", `{"subject":{"reference":"Patient?identifier=1"}}`, nil, true},
		{"wrong reference type", "Observation", `{"subject":{"reference":["Patient/1"]}}`, nil, true},
		{"invalid json", "Observation", `{"subject":`, nil, true},
		{"not in compartment", "Practitioner", `{"id":"1"}`, nil, false},
		{"unknown type", "Foo", `{}`, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, in := PatientRefs(tt.typ, []byte(tt.raw))
			if !slices.Equal(got, tt.want) || in != tt.inType {
				t.Errorf("got %q %v, want %q %v", got, in, tt.want, tt.inType)
			}
		})
	}
}

func TestPatientIDFromReference(t *testing.T) {
	for ref, want := range map[string]string{
		"Patient/1": "1", "Patient/1/_history/2": "1", "http://a/b/Patient/x.y": "x.y",
		"Patient/": "", "Patient": "", "a/Patient/1": "", "Group/1": "", "Patient/1#x": "", "Patient/1/x": "",
	} {
		got, ok := PatientIDFromReference(ref)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q %v", ref, got, ok)
		}
	}
}

func TestCompartmentData(t *testing.T) {
	for _, typ := range []string{"Observation", "Encounter", "Claim", "Patient", "Provenance"} {
		if !InPatientCompartment(typ) {
			t.Errorf("%s should be in the patient compartment", typ)
		}
	}
	for _, typ := range []string{"Practitioner", "Organization", "Medication", "Task", "Binary", "Device"} {
		if InPatientCompartment(typ) {
			t.Errorf("%s is in no patient compartment in R4", typ)
		}
	}
	for typ, params := range patientCompartment {
		if !IsResourceType(typ) {
			t.Errorf("compartment data names unknown type %q", typ)
		}
		if len(params) == 0 {
			t.Errorf("%s has no parameters", typ)
		}
		for _, p := range params {
			if p.Name == "" || len(p.Paths) == 0 {
				t.Errorf("%s: bad param %+v", typ, p)
			}
			for _, path := range p.Paths {
				for _, el := range path {
					if el == "" || strings.Trim(el, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
						t.Errorf("%s.%s: element %q is not a plain identifier", typ, p.Name, el)
					}
				}
			}
		}
	}
	if len(patientCompartment) != 66 {
		t.Errorf("%d compartment types, R4 lists 66", len(patientCompartment))
	}
	if len(ResourceTypes()) != 146 {
		t.Errorf("%d resource types", len(ResourceTypes()))
	}
	if p := PatientCompartmentParams("Claim"); len(p) != 2 || p[1].Name != "payee" {
		t.Errorf("Claim params %+v", p)
	}
}
