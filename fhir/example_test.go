package fhir_test

import (
	"fmt"
	"net/http"

	"github.com/fhirwall/fhirwall/fhir"
)

func ExampleClassify() {
	r, err := fhir.Classify("GET", "/Observation", "subject=Patient/123&_include=Observation:performer:Practitioner&code=a,b",
		http.Header{}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Interaction, r.ResourceType)
	for _, p := range r.Params {
		fmt.Println(p.Name, p.Values)
	}
	fmt.Println(r.PullIns.Include[0].Target)

	// Path tricks are refused, not normalised.
	_, err = fhir.Classify("GET", "/Observation/..;/Patient/1", "", http.Header{}, nil)
	fmt.Println(fhir.ReasonOf(err))
	// Output:
	// search-type Observation
	// subject [Patient/123]
	// _include [Observation:performer:Practitioner]
	// code [a b]
	// Practitioner
	// path-invalid
}

func ExamplePatientRefs() {
	ids, in := fhir.PatientRefs("Observation", []byte(`{"resourceType":"Observation",
		"subject":{"reference":"Patient/123"},"performer":[{"reference":"Practitioner/7"}]}`))
	fmt.Println(ids, in)
	// Output: [123] true
}
