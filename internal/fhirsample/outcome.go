package fhirsample

import (
	"fmt"
	"net/http"

	"github.com/fhirwall/fhirwall/fhir"
)

// failure is a FHIR error the server answers with: an HTTP status and one
// OperationOutcome issue. The sample server plays an upstream, so its
// outcomes deliberately carry no fhirwall reason code: a test can tell an
// upstream refusal from a gateway refusal.
type failure struct {
	status    int
	issueType string // http://hl7.org/fhir/issue-type
	detail    string
}

func (f *failure) Error() string {
	return fmt.Sprintf("%d %s: %s", f.status, f.issueType, f.detail)
}

func fail(status int, issueType, format string, args ...any) *failure {
	return &failure{status: status, issueType: issueType, detail: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *failure {
	return fail(http.StatusBadRequest, "invalid", format, args...)
}

func notFound(format string, args ...any) *failure {
	return fail(http.StatusNotFound, "not-found", format, args...)
}

// outcome returns the OperationOutcome resource for f.
func (f *failure) outcome() []byte {
	return outcomeJSON("error", f.issueType, f.detail)
}

func outcomeJSON(severity, issueType, detail string) []byte {
	oo := fhir.OperationOutcome{
		ResourceType: "OperationOutcome",
		Issue: []fhir.OutcomeIssue{{
			Severity:    severity,
			Code:        issueType,
			Diagnostics: detail,
		}},
	}
	b, err := marshal(oo)
	if err != nil { // cannot happen: plain strings and slices
		return []byte(`{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}`)
	}
	return b
}

// response returns the HTTP answer for f.
func (f *failure) response() response {
	return response{status: f.status, body: f.outcome()}
}
