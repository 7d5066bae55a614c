package policy

import (
	"encoding/json"
	"strings"
	"testing"
)

// checkBenchResources are a Claim, its Patient and an Observation shaped
// like those of the benchmark upstream's 200 KB searchset (bench/upstream):
// built from maps, so encoding/json writes members sorted by name and
// resourceType comes after most of them, as in the profiled gateway.
func checkBenchResources(tb testing.TB) []struct {
	typ string
	raw []byte
} {
	type obj = map[string]any
	coding := func(system, code, display string) obj {
		return obj{"coding": []any{obj{"system": system, "code": code, "display": display}}}
	}
	meta := obj{"versionId": "1", "lastUpdated": "2025-01-06T09:00:00Z",
		"tag": []any{obj{"system": "https://fhirwall.dev/fhir/CodeSystem/demo", "code": "synthetic", "display": "Synthetic demo data, not a real person"}}}
	resources := []obj{
		{
			"resourceType": "Claim", "id": "bench-claim-7", "meta": meta, "status": "active", "use": "claim", "created": "2025-01-06",
			"type":      coding("http://terminology.hl7.org/CodeSystem/claim-type", "professional", "Professional"),
			"patient":   obj{"reference": "Patient/bench-7"},
			"provider":  obj{"reference": "Organization/bench-org"},
			"priority":  coding("http://terminology.hl7.org/CodeSystem/processpriority", "normal", "Normal"),
			"insurance": []any{obj{"sequence": 1, "focal": true, "coverage": obj{"reference": "Coverage/bench-cov-bench-7"}}},
			"diagnosis": []any{
				obj{"sequence": 1, "diagnosisCodeableConcept": coding("http://hl7.org/fhir/sid/icd-10-cm", "E11.9", "Type 2 diabetes mellitus without complications")},
				obj{"sequence": 2, "diagnosisCodeableConcept": coding("http://hl7.org/fhir/sid/icd-10-cm", "I10", "Essential (primary) hypertension")},
			},
			"item": []any{obj{"sequence": 1, "diagnosisSequence": []any{1, 2},
				"productOrService": coding("http://www.ama-assn.org/go/cpt", "99213", "Office visit, established patient"),
				"unitPrice":        obj{"value": 127, "currency": "USD"}, "net": obj{"value": 127, "currency": "USD"}}},
			"total": obj{"value": 127, "currency": "USD"},
		},
		{
			"resourceType": "Patient", "id": "bench-7", "meta": meta, "active": true, "gender": "male", "birthDate": "1947-08-17",
			"identifier": []any{
				obj{"use": "usual", "system": "https://fhirwall.dev/fhir/sid/demo-mrn", "value": "MRN-100007"},
				obj{"use": "official", "type": coding("http://terminology.hl7.org/CodeSystem/v2-0203", "SS", "Social Security number"),
					"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-08-0008"},
			},
			"name": []any{obj{"use": "official", "family": "Novak", "given": []any{"Bo", "Q."}, "text": "Bo Q. Novak"}},
			"telecom": []any{
				obj{"system": "phone", "value": "(555) 555-0107", "use": "home"},
				obj{"system": "email", "value": "patient7@example.invalid", "use": "home"},
			},
			"address":       []any{obj{"use": "home", "line": []any{"17 Synthetic Street", "Apt 4"}, "city": "Springfield", "state": "IL", "postalCode": "62701", "country": "US"}},
			"maritalStatus": coding("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "M", "Married"),
			"contact": []any{obj{"relationship": []any{coding("http://terminology.hl7.org/CodeSystem/v2-0131", "N", "Next-of-Kin")},
				"name": obj{"family": "Novak", "given": []any{"Sam"}}, "telecom": []any{obj{"system": "phone", "value": "(555) 555-0199"}}}},
			"communication":        []any{obj{"language": coding("urn:ietf:bcp:47", "en-US", "English (United States)"), "preferred": true}},
			"managingOrganization": obj{"reference": "Organization/bench-org", "display": "Synthetic General Hospital"},
		},
		{
			"resourceType": "Observation", "id": "bench-obs-7", "meta": meta, "status": "final",
			"category":          []any{coding("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")},
			"code":              coding("http://loinc.org", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
			"subject":           obj{"reference": "Patient/bench-7", "display": "Bo Q. Novak"},
			"encounter":         obj{"reference": "Encounter/bench-enc-7"},
			"effectiveDateTime": "2024-02-22T10:15:00Z", "issued": "2024-02-22T16:40:00Z",
			"performer":      []any{obj{"reference": "Organization/bench-lab", "display": "Synthetic Lab"}},
			"valueQuantity":  obj{"value": 6.8, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
			"interpretation": []any{coding("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "H", "High")},
			"referenceRange": []any{obj{"low": obj{"value": 4, "unit": "%"}, "high": obj{"value": 5.6, "unit": "%"}}},
		},
	}
	var out []struct {
		typ string
		raw []byte
	}
	for _, r := range resources {
		raw, err := json.Marshal(r)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, struct {
			typ string
			raw []byte
		}{r["resourceType"].(string), raw})
	}
	return out
}

// BenchmarkCheckValidResource: the per-resource check of a search response
// as the masking rewriter calls it, under system/ scopes (the benchmark's
// full pipeline: every patient linked is recorded for the audit) and under
// a patient/ scope (the compartment decides).
func BenchmarkCheckValidResource(b *testing.B) {
	resources := checkBenchResources(b)
	for _, s := range []struct {
		name    string
		scopes  []string
		patient string
	}{
		{"system", []string{"system/Patient.rs", "system/Claim.rs", "system/Observation.rs"}, ""},
		{"patient", []string{"patient/*.rs"}, "bench-7"},
	} {
		d := decideFor(b, s.scopes, s.patient, "GET", "/Claim", "_include=Claim:patient:Patient")
		for _, r := range resources {
			b.Run(s.name+"/"+r.typ, func(b *testing.B) {
				b.SetBytes(int64(len(r.raw)))
				b.ReportAllocs()
				for b.Loop() {
					if v, err := d.Check.CheckValidResource(r.typ, r.raw, WhereBundleEntry); v != CheckKeep || err != nil {
						b.Fatalf("verdict %d, %v", v, err)
					}
				}
			})
		}
	}
}

// TestCheckValidResourceOnePass: the declared type and the compartment
// links now come from one pass; the check must decide as before, wherever
// resourceType stands.
func TestCheckValidResourceOnePass(t *testing.T) {
	d := decideFor(t, []string{"patient/*.rs"}, "bench-7", "GET", "/Claim", "")
	for _, r := range checkBenchResources(t) {
		if v, err := d.Check.CheckValidResource(r.typ, r.raw, WhereBundleEntry); v != CheckKeep || err != nil {
			t.Errorf("%s: verdict %d, %v", r.typ, v, err)
		}
		// The same resource checked as another compartment type.
		other := "Encounter"
		if v, err := d.Check.CheckValidResource(other, r.raw, WhereBundleEntry); v != CheckRefuse || err == nil || !strings.Contains(err.Error(), "is a "+r.typ+", not a Encounter") {
			t.Errorf("%s as %s: verdict %d, %v", r.typ, other, v, err)
		}
	}
	for _, tt := range []struct {
		name, typ, raw string
		want           int
		wantErr        bool
	}{
		{"type last", "Observation", `{"subject":{"reference":"Patient/bench-7"},"resourceType":"Observation"}`, CheckKeep, false},
		{"no type", "Observation", `{"subject":{"reference":"Patient/bench-7"}}`, CheckKeep, false},
		{"first type counts", "Observation", `{"resourceType":"Patient","subject":{"reference":"Patient/bench-7"},"resourceType":"Observation"}`, CheckRefuse, true},
		{"escaped type", "Observation", `{"resourceType":"Obs\u0065rvation","subject":{"reference":"Patient/bench-7"}}`, CheckKeep, false},
		{"null type", "Observation", `{"resourceType":null,"subject":{"reference":"Patient/bench-7"}}`, CheckRefuse, true},
		{"other patient", "Observation", `{"resourceType":"Observation","subject":{"reference":"Patient/9"}}`, CheckDrop, false},
		// Invalid JSON breaks CheckValidResource's contract; it must
		// still link to no patient.
		{"invalid", "Observation", `{"resourceType":"Observation","subject":{"reference":"Patient/bench-7"}`, CheckDrop, false},
		{"invalid type", "Observation", `{"resourceType":"Patient","subject":`, CheckRefuse, true},
	} {
		v, err := d.Check.CheckValidResource(tt.typ, []byte(tt.raw), WhereBundleEntry)
		if v != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("%s: verdict %d, %v; want %d (error %v)", tt.name, v, err, tt.want, tt.wantErr)
		}
	}
}
