package policy_test

import (
	"fmt"
	"net/http"

	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/policy"
)

func ExampleParseScope() {
	for _, s := range []string{
		"patient/Observation.read",
		"system/Claim.rs",
		"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
		"openid",
		"system/Claim.sr",
		"patient/Observation.rs?subject=Patient/1",
	} {
		sc, err := policy.ParseScope(s)
		switch {
		case err != nil:
			fmt.Println("error:", err)
		case !sc.IsSMART():
			fmt.Println("ignored:", sc.Raw)
		default:
			fmt.Println(sc.Context, sc.ResourceType, sc.Perms, len(sc.Query))
		}
	}
	// Output:
	// patient Observation rs 0
	// system Claim rs 0
	// patient Observation rs 1
	// ignored: openid
	// error: invalid SMART scope "system/Claim.sr": permissions must be in the order c r u d s, once each
	// error: invalid SMART scope "patient/Observation.rs?subject=Patient/1": parameter "subject" cannot be enforced in a scope (supported: category, code, _tag, _security, status)
}

func ExampleMapScopes() {
	set, problems := policy.MapScopes(
		[]string{"claims.read", "openid"},
		map[string][]string{"claims.read": {"system/Claim.rs", "system/Coverage.rs"}},
		[]string{"system/Claim.rs", "system/Patient.rs"},
	)
	fmt.Println(set)
	fmt.Println(problems)
	// Output:
	// system/Claim.rs
	// [scope system/Coverage.rs is beyond the agent's roles]
}

func ExampleDecide() {
	scope, _ := policy.ParseScope("patient/Observation.rs")
	subject := &policy.Subject{AgentID: "agent-7", Scopes: policy.NewScopeSet(scope), Patient: "123"}

	req, _ := fhir.Classify("GET", "/Observation", "code=4548-4", http.Header{}, nil)
	d := policy.Decide(subject, req)
	fmt.Println(d.Allow, d.NarrowQuery("code=4548-4"))

	req, _ = fhir.Classify("GET", "/Observation", "_has:Condition:subject:code=x", http.Header{}, nil)
	d = policy.Decide(subject, req)
	fmt.Println(d.Allow, d.Reason)
	// Output:
	// true code=4548-4&subject=Patient%2F123
	// false compartment-violation
}
