package fhir

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// ReasonSystem is the code system of fhirwall's reason codes. The codes
// appear in OperationOutcome.issue.details.coding, in AuditEvent.outcomeDesc
// and as the "reason" label of metrics; they are part of the public contract
// and never change meaning once released.
const ReasonSystem = "https://fhirwall.dev/fhir/CodeSystem/reason"

// Reason is a stable, documented code for why a request was refused or failed.
type Reason string

// The reason codes. Each one maps to one HTTP status and one FHIR issue type
// (see reasons below); docs/reasons.md documents them for users.
const (
	ReasonTokenMissing         Reason = "token-missing"
	ReasonTokenMalformed       Reason = "token-malformed"
	ReasonTokenInvalid         Reason = "token-invalid"
	ReasonTokenExpired         Reason = "token-expired"
	ReasonTokenNotYetValid     Reason = "token-not-yet-valid"
	ReasonIssuerUnknown        Reason = "issuer-unknown"
	ReasonAudienceMismatch     Reason = "audience-mismatch"
	ReasonAgentUnknown         Reason = "agent-unknown"
	ReasonAgentRevoked         Reason = "agent-revoked"
	ReasonTokenRevoked         Reason = "token-revoked"
	ReasonScopeMissing         Reason = "scope-missing"
	ReasonScopeContextMixed    Reason = "scope-context-mixed"
	ReasonPatientContext       Reason = "patient-context-missing"
	ReasonCompartmentViolation Reason = "compartment-violation"
	ReasonOperationDenied      Reason = "operation-denied"
	ReasonRouteDenied          Reason = "route-rule-missing"
	ReasonRequestInvalid       Reason = "request-invalid"
	ReasonPathInvalid          Reason = "path-invalid"
	ReasonNotSupported         Reason = "interaction-unsupported"
	ReasonNotAcceptable        Reason = "format-not-acceptable"
	ReasonNotFound             Reason = "not-found"
	ReasonRateLimited          Reason = "rate-limited"
	ReasonPatientBudget        Reason = "patient-budget"
	ReasonResourceCap          Reason = "resource-cap"
	ReasonAuditUnavailable     Reason = "audit-unavailable"
	ReasonUpstreamUnavailable  Reason = "upstream-unavailable"
	ReasonUpstreamTimeout      Reason = "upstream-timeout"
	ReasonResponseUnmaskable   Reason = "response-unmaskable"
	ReasonClientGone           Reason = "client-disconnected"
	ReasonGuardUnavailable     Reason = "guard-unavailable"
	ReasonInternal             Reason = "internal-error"
)

type reasonInfo struct {
	status    int
	issueType string // http://hl7.org/fhir/issue-type
	display   string
}

var reasons = map[Reason]reasonInfo{
	ReasonTokenMissing:         {http.StatusUnauthorized, "login", "No bearer token was presented"},
	ReasonTokenMalformed:       {http.StatusUnauthorized, "login", "The bearer token is malformed"},
	ReasonTokenInvalid:         {http.StatusUnauthorized, "login", "The bearer token is not valid"},
	ReasonTokenExpired:         {http.StatusUnauthorized, "expired", "The bearer token has expired"},
	ReasonTokenNotYetValid:     {http.StatusUnauthorized, "login", "The bearer token is not valid yet"},
	ReasonIssuerUnknown:        {http.StatusUnauthorized, "login", "The token issuer is not trusted"},
	ReasonAudienceMismatch:     {http.StatusUnauthorized, "login", "The token is not meant for this gateway"},
	ReasonAgentUnknown:         {http.StatusUnauthorized, "login", "The agent is not registered"},
	ReasonAgentRevoked:         {http.StatusForbidden, "forbidden", "The agent has been revoked"},
	ReasonTokenRevoked:         {http.StatusUnauthorized, "login", "The token has been revoked"},
	ReasonScopeMissing:         {http.StatusForbidden, "forbidden", "No granted scope permits this request"},
	ReasonScopeContextMixed:    {http.StatusForbidden, "forbidden", "The token mixes patient/ with user/ or system/ scopes"},
	ReasonPatientContext:       {http.StatusForbidden, "forbidden", "A patient/ scope needs a patient context"},
	ReasonCompartmentViolation: {http.StatusForbidden, "forbidden", "The request leaves the patient's compartment"},
	ReasonOperationDenied:      {http.StatusForbidden, "forbidden", "The operation is not allowed for this agent"},
	ReasonRouteDenied:          {http.StatusForbidden, "forbidden", "No rule of this route permits this request"},
	ReasonRequestInvalid:       {http.StatusBadRequest, "invalid", "The request is not valid"},
	ReasonPathInvalid:          {http.StatusBadRequest, "invalid", "The request path is not a valid FHIR path"},
	ReasonNotSupported:         {http.StatusBadRequest, "not-supported", "The interaction is not supported"},
	ReasonNotAcceptable:        {http.StatusNotAcceptable, "not-supported", "Only JSON can be served through this gateway"},
	ReasonNotFound:             {http.StatusNotFound, "not-found", "Not found"},
	ReasonRateLimited:          {http.StatusTooManyRequests, "throttled", "Too many requests for this agent"},
	ReasonPatientBudget:        {http.StatusTooManyRequests, "throttled", "The agent has reached its distinct-patient budget"},
	ReasonResourceCap:          {http.StatusForbidden, "too-costly", "The response has more resources than this agent may receive"},
	ReasonAuditUnavailable:     {http.StatusServiceUnavailable, "transient", "The audit store cannot record this access"},
	ReasonUpstreamUnavailable:  {http.StatusBadGateway, "transient", "The upstream server cannot be reached"},
	ReasonUpstreamTimeout:      {http.StatusGatewayTimeout, "timeout", "The upstream server did not answer in time"},
	ReasonResponseUnmaskable:   {http.StatusBadGateway, "processing", "The upstream response cannot be filtered safely"},
	ReasonClientGone:           {http.StatusBadRequest, "incomplete", "The client went away before the response ended"},
	ReasonGuardUnavailable:     {http.StatusServiceUnavailable, "transient", "The shared guardrail state cannot be reached"},
	ReasonInternal:             {http.StatusInternalServerError, "exception", "Internal error"},
}

// Reasons lists every reason code, for documentation and metrics.
func Reasons() []Reason {
	out := make([]Reason, 0, len(reasons))
	for r := range reasons {
		out = append(out, r)
	}
	return out
}

// Status is the HTTP status a refusal with this reason is answered with.
func (r Reason) Status() int {
	if info, ok := reasons[r]; ok {
		return info.status
	}
	return http.StatusInternalServerError
}

// Display is the human-readable meaning of the code.
func (r Reason) Display() string { return reasons[r].display }

// Error is a refusal or failure that carries a stable reason code. Every
// package that refuses a request returns one (wrapped or not); WriteError is
// the one place that turns it into an HTTP response.
type Error struct {
	Reason Reason
	// Detail is shown to the client as OperationOutcome.issue.diagnostics.
	// It must never contain a token or PHI.
	Detail string
	// Err is the underlying cause, kept for logs and errors.Is; it is not
	// shown to the client.
	Err error
}

// Errorf returns an *Error with the given reason and a formatted detail.
func Errorf(reason Reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given reason, a detail for the client and
// the underlying cause.
func Wrap(reason Reason, err error, detail string) *Error {
	return &Error{Reason: reason, Detail: detail, Err: err}
}

func (e *Error) Error() string {
	s := string(e.Reason)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same reason, so that
// errors.Is(err, &fhir.Error{Reason: fhir.ReasonTokenExpired}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason
}

// ReasonOf returns the reason carried by err, or ReasonInternal when err
// carries none.
func ReasonOf(err error) Reason {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Reason
	}
	return ReasonInternal
}

// OperationOutcome is the subset of the R4 OperationOutcome resource that
// fhirwall writes.
type OperationOutcome struct {
	ResourceType string         `json:"resourceType"`
	Issue        []OutcomeIssue `json:"issue"`
}

// OutcomeIssue is one OperationOutcome.issue.
type OutcomeIssue struct {
	Severity    string           `json:"severity"`
	Code        string           `json:"code"`
	Details     *CodeableConcept `json:"details,omitempty"`
	Diagnostics string           `json:"diagnostics,omitempty"`
}

// CodeableConcept is the R4 CodeableConcept data type.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Coding is the R4 Coding data type.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code,omitempty"`
	Display string `json:"display,omitempty"`
}

// Outcome builds the OperationOutcome for a reason and a detail.
func Outcome(reason Reason, detail string) OperationOutcome {
	info, ok := reasons[reason]
	if !ok {
		info = reasons[ReasonInternal]
	}
	return OperationOutcome{
		ResourceType: "OperationOutcome",
		Issue: []OutcomeIssue{{
			Severity: "error",
			Code:     info.issueType,
			Details: &CodeableConcept{
				Coding: []Coding{{System: ReasonSystem, Code: string(reason), Display: info.display}},
				Text:   info.display,
			},
			Diagnostics: detail,
		}},
	}
}

// ContentTypeJSON is the media type of every FHIR body fhirwall writes.
const ContentTypeJSON = "application/fhir+json; charset=utf-8"

// WriteError answers w with the OperationOutcome for err and the status of
// its reason. An err that carries no reason is answered as internal-error
// without its text, which may hold details the client must not see.
func WriteError(w http.ResponseWriter, err error) {
	reason := ReasonOf(err)
	detail := ""
	var fe *Error
	if errors.As(err, &fe) {
		detail = fe.Detail
	}
	WriteOutcome(w, reason.Status(), Outcome(reason, detail))
}

// WriteOutcome writes oo with the given status.
func WriteOutcome(w http.ResponseWriter, status int, oo OperationOutcome) {
	body, _ := json.Marshal(oo) // cannot fail: plain strings and slices
	h := w.Header()
	h.Set("Content-Type", ContentTypeJSON)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
