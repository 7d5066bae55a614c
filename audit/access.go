package audit

import "time"

// Access is what the gateway knows about one request, handed to Intent,
// Complete and Record. The caller owns it; the audit package reads it and
// never keeps a reference after the call returns. It must never carry a
// bearer token or a response body: Query is the raw query string with
// tokens removed (access_token parameters are redacted again here, as a
// second line of defence).
type Access struct {
	RequestID  string
	Start, End time.Time
	Agent      Agent
	SourceAddr string // client address as seen by the gateway (host:port or host)
	Route      string // route name from the configuration
	Method     string
	Path       string
	Query      string
	// Interaction is the FHIR restful-interaction code (read vread update
	// patch delete history-instance history-type history-system create
	// search-type search-system capabilities batch transaction operation),
	// or "" for REST routes and for requests refused before classification.
	Interaction  string
	ResourceType string
	ResourceID   string
	// Decision is "allow", "deny" or "shadow-deny" (computed but not
	// enforced: the data was disclosed).
	Decision string
	// Reason is the fhir.Reason code of a refusal or failure, "" on success.
	Reason string
	// Status is the HTTP status sent to the agent, 0 if the connection failed
	// before a status was written.
	Status        int
	Failed        bool
	FailureDetail string // no PHI, no tokens: an error kind, not a body
	// Patients are the ids of patients whose data was disclosed (or, on a
	// refusal, targeted). Either "123" or "Patient/123".
	Patients       []string
	Resources      []ResourceRef
	Masks          []MaskApplied
	ResponseSHA256 string // hex SHA-256 of the exact bytes sent to the agent
	ResponseBytes  int64
	PolicyVersion  string
	// Part numbers the continuation events of one access whose patients
	// and resources are too many for one event (see ExtPart); 0 for the
	// access's own event.
	Part int
}

// Agent identifies who made the request. ID is "unauthenticated" (see
// Unauthenticated) when authentication failed.
type Agent struct {
	ID           string
	ClientID     string
	Issuer       string
	JTI          string
	Roles        []string
	PurposeOfUse []string // v3-ActReason codes (TREAT, HPAYMT, ...) from the token
}

// Unauthenticated is the agent id recorded for requests whose credentials
// were missing or invalid.
const Unauthenticated = "unauthenticated"

// ResourceRef is one resource returned to the agent (or targeted).
type ResourceRef struct {
	Type, ID, Version string
}

// MaskApplied says that a mask profile removed or transformed Count
// elements at Path.
type MaskApplied struct {
	Profile string
	Path    string
	Count   int
}

// Decisions recorded in Access.Decision.
const (
	DecisionAllow      = "allow"
	DecisionDeny       = "deny"
	DecisionShadowDeny = "shadow-deny"
)
