package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// An intent's body is not an AuditEvent: nobody reads an intent but the
// writer that closes it, auditors see events only (Search, Export and the
// sinks skip intents). It is the Access as the gateway knew it before
// forwarding, in a compact JSON document:
//
//	{"fhirwallIntent":1,"serverAddr":"10.0.0.5","access":{"requestId":...}}
//
// An intent closed without its completion (a crash, an access refused
// because its intent was late) becomes the AuditEvent the intent would
// have been, built from that Access, so the record of such an access is
// as complete as before; the chain hashes these bytes like any other.
// A read's intent is ~0.5 KB instead of the ~2.6 KB of its AuditEvent:
// the intents were 40% of what a read-heavy store wrote and kept.
//
// Stores written before this format hold intents that are AuditEvents;
// intentEvent reads both.

// intentFormat is the version of the intent document.
const intentFormat = 1

type intentDoc struct {
	Format     int          `json:"fhirwallIntent"`
	ServerAddr string       `json:"serverAddr,omitempty"`
	Access     intentAccess `json:"access"`
}

// intentAccess is Access with the document's member names. A conversion
// between the two compiles only while their fields are the same, so a
// field added to Access cannot be left out of intents unnoticed; nested
// values (Agent, ResourceRef, MaskApplied) keep their Go field names, and
// TestIntentFormatIsStable pins the whole encoding.
type intentAccess struct {
	RequestID      string        `json:"requestId,omitempty"`
	Start          time.Time     `json:"start"`
	End            time.Time     `json:"end"`
	Agent          Agent         `json:"agent"`
	SourceAddr     string        `json:"sourceAddr,omitempty"`
	Route          string        `json:"route,omitempty"`
	Method         string        `json:"method,omitempty"`
	Path           string        `json:"path,omitempty"`
	Query          string        `json:"query,omitempty"`
	Interaction    string        `json:"interaction,omitempty"`
	ResourceType   string        `json:"resourceType,omitempty"`
	ResourceID     string        `json:"resourceId,omitempty"`
	Decision       string        `json:"decision,omitempty"`
	Reason         string        `json:"reason,omitempty"`
	Status         int           `json:"status,omitempty"`
	Failed         bool          `json:"failed,omitempty"`
	FailureDetail  string        `json:"failureDetail,omitempty"`
	Patients       []string      `json:"patients,omitempty"`
	Resources      []ResourceRef `json:"resources,omitempty"`
	Masks          []MaskApplied `json:"masks,omitempty"`
	ResponseSHA256 string        `json:"responseSha256,omitempty"`
	ResponseBytes  int64         `json:"responseBytes,omitempty"`
	PolicyVersion  string        `json:"policyVersion,omitempty"`
	Part           int           `json:"part,omitempty"`
}

// encodeIntent is the body of the intent record of a. Credentials in the
// query are redacted here too, as buildEvent does: the caller should have
// removed them, and a record must never hold one.
func encodeIntent(a *Access, ec eventContext) ([]byte, error) {
	ia := intentAccess(*a)
	ia.Query = redactQuery(a.Query)
	return json.Marshal(intentDoc{Format: intentFormat, ServerAddr: ec.serverAddr, Access: ia})
}

// intentEvent is the AuditEvent an intent record stands for (phase
// intent), for closing it: built from its Access, or read as it is from a
// store written before intents were compact.
func intentEvent(in *Record) (fm.AuditEvent, error) {
	if !bytes.HasPrefix(in.Body, []byte(`{"fhirwallIntent":`)) {
		return fm.UnmarshalAuditEvent(in.Body)
	}
	var doc intentDoc
	if err := json.Unmarshal(in.Body, &doc); err != nil {
		return fm.AuditEvent{}, err
	}
	if doc.Format != intentFormat {
		return fm.AuditEvent{}, fmt.Errorf("intent format %d is not %d", doc.Format, intentFormat)
	}
	if in.EventID == "" {
		return fm.AuditEvent{}, errors.New("intent without an event id")
	}
	a := Access(doc.Access)
	return buildEvent(&a, in.EventID, in.Recorded, PhaseIntent, eventContext{source: in.Source, serverAddr: doc.ServerAddr}), nil
}
