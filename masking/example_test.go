package masking_test

import (
	"fmt"
	"os"
	"strings"

	"github.com/fhirwall/fhirwall/masking"
)

// Compile the mask profiles once (at config load), then make a Rewriter per
// response with the profiles that apply to the agent.
func Example() {
	set, err := masking.Compile(map[string][]masking.RuleSpec{
		"contact-minimum": {
			{Path: "Patient.telecom"},
			{Path: "Patient.birthDate", Action: "generalize"},
			{Path: "Reference.display"},
		},
	}, masking.Options{
		UpstreamBase: "http://fhir.internal:9090/fhir",
		PublicBase:   "https://gateway.example.org/fhir",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	rw, err := set.Rewriter([]string{"contact-minimum"}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	upstream := strings.NewReader(`{"resourceType":"Bundle","type":"searchset","entry":[
	 {"fullUrl":"http://fhir.internal:9090/fhir/Patient/1",
	  "resource":{"resourceType":"Patient","id":"1","telecom":[{"system":"phone","value":"555-0100"}],
	              "birthDate":"1970-02-03","generalPractitioner":[{"reference":"Practitioner/7","display":"Dr. Who"}]}}]}`)
	sum, err := rw.Rewrite(os.Stdout, upstream)
	if err != nil {
		// The response must be aborted, never completed.
		fmt.Println(err)
		return
	}
	fmt.Println()
	fmt.Println(sum.Resources, sum.Masked)
	// Output:
	// {"resourceType":"Bundle","type":"searchset","entry":[{"fullUrl":"https://gateway.example.org/fhir/Patient/1","resource":{"resourceType":"Patient","id":"1","birthDate":"1970","generalPractitioner":[{"reference":"Practitioner/7"}],"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"REDACTED","display":"redacted"}]}}}]}
	// [{Bundle  } {Patient 1 }] map[contact-minimum:Patient.birthDate:1 contact-minimum:Patient.telecom:1 contact-minimum:Reference.display:1]
}

// A REST route's JSON body is masked with gjson paths.
func ExampleJSONMasker() {
	m, err := masking.CompileJSONPaths([]string{"diagnosis", "patient.ssn"}, masking.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	out, n, err := m.Mask([]byte(`{"id":"c1","diagnosis":"J10","patient":{"name":"x","ssn":"123-45-6789"}}`))
	fmt.Println(string(out), n, err)
	// Output: {"id":"c1","patient":{"name":"x"}} 2 <nil>
}
