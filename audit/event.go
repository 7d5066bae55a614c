package audit

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Code systems and identifier namespaces used in every AuditEvent.
const (
	SystemEventType       = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	SystemInteraction     = "http://hl7.org/fhir/restful-interaction"
	SystemDICOM           = "http://dicom.nema.org/resources/ontology/DCM"
	SystemParticipation   = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	SystemEntityType      = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	SystemObjectRole      = "http://terminology.hl7.org/CodeSystem/object-role"
	SystemBALPEntity      = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
	SystemActReason       = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	SystemSourceType      = "http://terminology.hl7.org/CodeSystem/security-source-type"
	SystemProvenanceAgent = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
	// SubtypeRESTSystem holds the lower-case HTTP method as the subtype of
	// accesses that are not FHIR interactions (REST routes, requests refused
	// before classification).
	SubtypeRESTSystem = "https://fhirwall.dev/fhir/CodeSystem/http-method"
	SystemRole        = "https://fhirwall.dev/fhir/CodeSystem/role"
	SIDAgent          = "https://fhirwall.dev/fhir/sid/agent"
	SIDClient         = "https://fhirwall.dev/fhir/sid/client"
	SIDGateway        = "https://fhirwall.dev/fhir/sid/gateway"
	BALPProfileBase   = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit."
)

// fhirwall's extensions to AuditEvent, documented here (the constant is the
// definition); their URLs never change meaning.
const (
	extBase = "https://fhirwall.dev/fhir/StructureDefinition/audit-"
	// ExtDecision (valueCode): allow, deny or shadow-deny.
	ExtDecision = extBase + "decision"
	// ExtPhase (valueCode): intent (written before forwarding), complete, or
	// incomplete (an intent closed at start-up after a crash).
	ExtPhase = extBase + "phase"
	// ExtHTTP (complex): method (valueCode), route (valueString), path
	// (valueString), query (valueString, credentials redacted; searches
	// keep theirs in the BALP query entity instead), status (valueInteger,
	// absent if none was sent).
	ExtHTTP = extBase + "http"
	// ExtMask (complex, repeats): profile (valueString), path
	// (valueString), count (valueInteger) of elements masked.
	ExtMask = extBase + "mask"
	// ExtResponse (complex): sha256 (valueString, hex of the exact bytes
	// sent to the agent), bytes (valueDecimal).
	ExtResponse = extBase + "response"
	// ExtPolicyVersion (valueString): the policy/config version in force.
	ExtPolicyVersion = extBase + "policy-version"
	// ExtFailure (valueString): what failed (upstream error, client gone).
	ExtFailure = extBase + "failure"
	// ExtDisclosed (valueBoolean, on entity): this resource was sent to the
	// agent, as opposed to merely targeted.
	ExtDisclosed = extBase + "disclosed"
	// ExtPart (valueInteger): on an access whose disclosures were too many
	// for one event, the continuation number (1, 2, ...) of an event that
	// lists more patients and resources of the same request (same
	// XrequestId entity). The main event has no ExtPart.
	ExtPart = extBase + "part"
)

// Phases of an access record, carried in ExtPhase.
const (
	PhaseIntent     = "intent"
	PhaseComplete   = "complete"
	PhaseIncomplete = "incomplete"
)

// OutcomeIncomplete is the outcomeDesc of an intent closed after a crash.
const OutcomeIncomplete = "incomplete"

// eventContext is what the Log knows about itself when building events.
type eventContext struct {
	source     string // instance name
	serverAddr string // network address of the gateway, "" if unknown
}

func ptr[T any](v T) *T { return &v }

func coding(system, code, display string) fm.Coding {
	c := fm.Coding{System: ptr(system), Code: ptr(code)}
	if display != "" {
		c.Display = ptr(display)
	}
	return c
}

func concept(system, code, display string) fm.CodeableConcept {
	return fm.CodeableConcept{Coding: []fm.Coding{coding(system, code, display)}}
}

// actionOf maps an interaction (or, for REST routes, the HTTP method) to the
// AuditEvent action, as BALP does: searches, operations, batches are E.
func actionOf(a *Access) fm.AuditEventAction {
	switch a.Interaction {
	case "create":
		return fm.AuditEventActionC
	case "read", "vread", "history-instance", "history-type", "history-system", "capabilities":
		return fm.AuditEventActionR
	case "update", "patch":
		return fm.AuditEventActionU
	case "delete":
		return fm.AuditEventActionD
	case "":
	default:
		return fm.AuditEventActionE
	}
	switch strings.ToUpper(a.Method) {
	case "GET", "HEAD":
		return fm.AuditEventActionR
	case "POST":
		return fm.AuditEventActionC
	case "PUT", "PATCH":
		return fm.AuditEventActionU
	case "DELETE":
		return fm.AuditEventActionD
	}
	return fm.AuditEventActionE
}

// outcomeOf is the single mapping from an access to outcome and
// outcomeDesc; see the package documentation for the table.
func outcomeOf(a *Access, phase string) (fm.AuditEventOutcome, string) {
	if phase == PhaseIncomplete {
		return fm.AuditEventOutcome8, OutcomeIncomplete
	}
	desc := a.Reason
	switch {
	case a.Reason == "internal-error" || a.Reason == "audit-unavailable":
		return fm.AuditEventOutcome12, desc
	case a.Failed || a.Status >= 500 || (a.Status == 0 && a.Decision != DecisionDeny):
		if desc == "" {
			desc = "failed"
		}
		return fm.AuditEventOutcome8, desc
	case a.Decision == DecisionDeny || a.Status >= 400 || a.Reason != "":
		if desc == "" {
			desc = "http-" + strconv.Itoa(a.Status)
		}
		return fm.AuditEventOutcome4, desc
	}
	return fm.AuditEventOutcome0, ""
}

// readPattern reports whether BALP's Read pattern applies (client is the
// Destination of data): every R action. Query, Create, Update, Delete and
// E actions put the client as Source (the request flows to the server).
func readPattern(act fm.AuditEventAction) bool { return act == fm.AuditEventActionR }

func networkOf(addr string) *fm.AuditEventAgentNetwork {
	if addr == "" {
		return nil
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	t := fm.AuditEventAgentNetworkType1 // machine name
	if net.ParseIP(host) != nil {
		t = fm.AuditEventAgentNetworkType2 // IP address
	}
	return &fm.AuditEventAgentNetwork{Address: ptr(host), Type: &t}
}

func ident(system, value string) *fm.Reference {
	return &fm.Reference{Identifier: &fm.Identifier{System: ptr(system), Value: ptr(value)}}
}

// redactQuery removes the value of any parameter that may carry a
// credential, in case a caller forgot: the audit log must never hold a token.
func redactQuery(q string) string {
	if q == "" {
		return ""
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		switch strings.ToLower(k) {
		case "access_token", "token", "id_token", "refresh_token", "client_secret", "client_assertion":
			parts[i] = k + "=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}

func patientRef(p string) string {
	p = strings.TrimPrefix(p, "Patient/")
	return "Patient/" + p
}

func resourceRef(r ResourceRef) string {
	s := r.Type + "/" + r.ID
	if r.Version != "" {
		s += "/_history/" + r.Version
	}
	return s
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// buildEvent turns an access into the AuditEvent for the given phase. It is
// deterministic: the same inputs give the same event.
func buildEvent(a *Access, id string, recorded time.Time, phase string, ec eventContext) fm.AuditEvent {
	act := actionOf(a)
	ev := fm.AuditEvent{
		Id:       ptr(id),
		Type:     coding(SystemEventType, "rest", "Restful Operation"),
		Action:   &act,
		Recorded: ts(recorded),
	}
	if a.Interaction != "" {
		ev.Subtype = []fm.Coding{coding(SystemInteraction, a.Interaction, "")}
	} else {
		ev.Subtype = []fm.Coding{coding(SubtypeRESTSystem, strings.ToLower(a.Method), "")}
	}
	if !a.Start.IsZero() {
		ev.Period = &fm.Period{Start: ptr(ts(a.Start))}
		if !a.End.IsZero() && phase != PhaseIntent {
			ev.Period.End = ptr(ts(a.End))
		}
	}
	if phase != PhaseIntent {
		oc, desc := outcomeOf(a, phase)
		ev.Outcome = &oc
		if desc != "" {
			ev.OutcomeDesc = ptr(desc)
		}
	}
	ev.Agent = agentsOf(a, act, ec)
	ev.Source = fm.AuditEventSource{
		Site:     ptr(ec.source),
		Observer: fm.Reference{Identifier: &fm.Identifier{System: ptr(SIDGateway), Value: ptr(ec.source)}, Display: ptr("fhirwall")},
		Type:     []fm.Coding{coding(SystemSourceType, "6", "Security Server")},
	}
	ev.Entity = entitiesOf(a)
	ev.Extension = extensionsOf(a, phase)
	if p := balpProfile(&ev, a, act, phase, ec); p != "" {
		ev.Meta = &fm.Meta{Profile: []string{BALPProfileBase + p}}
	}
	return ev
}

func agentsOf(a *Access, act fm.AuditEventAction, ec eventContext) []fm.AuditEventAgent {
	clientType := concept(SystemDICOM, "110153", "Source Role ID")
	serverType := concept(SystemDICOM, "110152", "Destination Role ID")
	switch {
	case readPattern(act):
		clientType, serverType = serverType, clientType
	case act == fm.AuditEventActionD:
		// BALP Delete types the agents by function, not data flow.
		clientType = concept(SystemDICOM, "110150", "Application")
		serverType = concept(SystemProvenanceAgent, "custodian", "Custodian")
	}
	userType, userDisp := "IRCP", "information recipient"
	switch act {
	case fm.AuditEventActionC, fm.AuditEventActionU:
		userType, userDisp = "AUT", "author (originator)"
	case fm.AuditEventActionD:
		userType, userDisp = "CST", "custodian"
	}
	agentID := a.Agent.ID
	if agentID == "" {
		agentID = Unauthenticated
	}
	user := fm.AuditEventAgent{
		Type:      ptr(concept(SystemParticipation, userType, userDisp)),
		Who:       ident(SIDAgent, agentID),
		Name:      ptr(agentID),
		Requestor: true,
	}
	if a.Agent.ClientID != "" && a.Agent.ClientID != agentID {
		user.AltId = ptr(a.Agent.ClientID)
	}
	for _, r := range a.Agent.Roles {
		user.Role = append(user.Role, concept(SystemRole, r, ""))
	}
	if a.Agent.JTI != "" {
		user.Policy = []string{"urn:ietf:params:oauth:jti:" + a.Agent.JTI}
	}
	for _, p := range a.Agent.PurposeOfUse {
		user.PurposeOfUse = append(user.PurposeOfUse, concept(SystemActReason, p, ""))
	}

	client := fm.AuditEventAgent{
		Type:    ptr(clientType),
		Network: networkOf(a.SourceAddr),
	}
	switch {
	case a.Agent.ClientID != "":
		sys := a.Agent.Issuer
		if sys == "" {
			sys = SIDClient
		}
		client.Who = ident(sys, a.Agent.ClientID)
	default:
		client.Who = &fm.Reference{Display: ptr("unidentified client")}
	}
	server := fm.AuditEventAgent{
		Type:    ptr(serverType),
		Who:     ident(SIDGateway, ec.source),
		Network: networkOf(ec.serverAddr),
	}
	server.Who.Display = ptr("fhirwall")
	return []fm.AuditEventAgent{user, client, server}
}

func entitiesOf(a *Access) []fm.AuditEventEntity {
	var out []fm.AuditEventEntity
	if a.RequestID != "" {
		out = append(out, fm.AuditEventEntity{
			Type: ptr(coding(SystemBALPEntity, "XrequestId", "")),
			What: &fm.Reference{Identifier: &fm.Identifier{Value: ptr(a.RequestID)}},
		})
	}
	if strings.HasPrefix(a.Interaction, "search") {
		raw := a.Path
		if q := redactQuery(a.Query); q != "" {
			raw += "?" + q
		}
		out = append(out, fm.AuditEventEntity{
			Type:  ptr(coding(SystemEntityType, "2", "System Object")),
			Role:  ptr(coding(SystemObjectRole, "24", "Query")),
			Query: ptr(base64.StdEncoding.EncodeToString([]byte(raw))),
		})
	}
	seen := map[string]bool{}
	addData := func(ref string, disclosed bool) {
		if seen[ref] {
			return
		}
		seen[ref] = true
		e := fm.AuditEventEntity{
			Type: ptr(coding(SystemEntityType, "2", "System Object")),
			Role: ptr(coding(SystemObjectRole, "4", "Domain Resource")),
			What: &fm.Reference{Reference: ptr(ref)},
		}
		if disclosed {
			e.Extension = []fm.Extension{{Url: ExtDisclosed, ValueBoolean: ptr(true)}}
		}
		out = append(out, e)
	}
	for _, r := range a.Resources {
		if r.Type == "" || r.ID == "" {
			continue
		}
		addData(resourceRef(r), true)
		seen[r.Type+"/"+r.ID] = true
	}
	if a.ResourceType != "" && a.ResourceID != "" {
		addData(a.ResourceType+"/"+a.ResourceID, false)
	}
	pats := make([]string, 0, len(a.Patients))
	for _, p := range a.Patients {
		if strings.TrimPrefix(p, "Patient/") == "" {
			continue
		}
		pats = append(pats, patientRef(p))
	}
	slices.Sort(pats)
	for _, p := range slices.Compact(pats) {
		out = append(out, fm.AuditEventEntity{
			Type: ptr(coding(SystemEntityType, "1", "Person")),
			Role: ptr(coding(SystemObjectRole, "1", "Patient")),
			What: &fm.Reference{Reference: ptr(p)},
		})
	}
	return out
}

func extensionsOf(a *Access, phase string) []fm.Extension {
	var ext []fm.Extension
	if a.Decision != "" {
		ext = append(ext, fm.Extension{Url: ExtDecision, ValueCode: ptr(a.Decision)})
	}
	ext = append(ext, fm.Extension{Url: ExtPhase, ValueCode: ptr(phase)})
	h := fm.Extension{Url: ExtHTTP}
	if a.Method != "" {
		h.Extension = append(h.Extension, fm.Extension{Url: "method", ValueCode: ptr(strings.ToUpper(a.Method))})
	}
	if a.Route != "" {
		h.Extension = append(h.Extension, fm.Extension{Url: "route", ValueString: ptr(a.Route)})
	}
	if a.Path != "" {
		h.Extension = append(h.Extension, fm.Extension{Url: "path", ValueString: ptr(a.Path)})
	}
	// Searches carry their query in the BALP query entity; other
	// interactions (operations, REST routes) keep it here.
	if q := redactQuery(a.Query); q != "" && !strings.HasPrefix(a.Interaction, "search") {
		h.Extension = append(h.Extension, fm.Extension{Url: "query", ValueString: ptr(q)})
	}
	if a.Status != 0 && phase != PhaseIntent {
		h.Extension = append(h.Extension, fm.Extension{Url: "status", ValueInteger: ptr(a.Status)})
	}
	if len(h.Extension) > 0 {
		ext = append(ext, h)
	}
	for _, m := range a.Masks {
		ext = append(ext, fm.Extension{Url: ExtMask, Extension: []fm.Extension{
			{Url: "profile", ValueString: ptr(m.Profile)},
			{Url: "path", ValueString: ptr(m.Path)},
			{Url: "count", ValueInteger: ptr(m.Count)},
		}})
	}
	if a.ResponseSHA256 != "" || a.ResponseBytes > 0 {
		r := fm.Extension{Url: ExtResponse}
		if a.ResponseSHA256 != "" {
			r.Extension = append(r.Extension, fm.Extension{Url: "sha256", ValueString: ptr(a.ResponseSHA256)})
		}
		n := json.Number(strconv.FormatInt(a.ResponseBytes, 10))
		r.Extension = append(r.Extension, fm.Extension{Url: "bytes", ValueDecimal: &n})
		ext = append(ext, r)
	}
	if a.PolicyVersion != "" {
		ext = append(ext, fm.Extension{Url: ExtPolicyVersion, ValueString: ptr(a.PolicyVersion)})
	}
	if a.FailureDetail != "" {
		ext = append(ext, fm.Extension{Url: ExtFailure, ValueString: ptr(a.FailureDetail)})
	}
	if a.Part > 0 {
		ext = append(ext, fm.Extension{Url: ExtPart, ValueInteger: ptr(a.Part)})
	}
	return ext
}

// balpProfile names the BALP profile the event conforms to, or "" when it
// conforms to none: BALP profiles describe successful accesses only, need
// the network address of client and server, and their Patient variants
// allow exactly one patient.
func balpProfile(ev *fm.AuditEvent, a *Access, act fm.AuditEventAction, phase string, ec eventContext) string {
	if phase != PhaseComplete || ev.Outcome == nil || *ev.Outcome != fm.AuditEventOutcome0 {
		return ""
	}
	if a.SourceAddr == "" || ec.serverAddr == "" || a.Agent.ClientID == "" {
		return ""
	}
	var data, patients int
	for _, e := range ev.Entity {
		switch *e.Type.Code {
		case "2":
			if *e.Role.Code == "4" {
				data++
			}
		case "1":
			patients++
		}
	}
	var base string
	switch a.Interaction {
	case "read", "vread":
		base = "Read"
	case "create":
		base = "Create"
	case "update", "patch":
		base = "Update"
	case "delete":
		base = "Delete"
	case "search-type", "search-system", "search":
		switch patients {
		case 0:
			return "Query"
		case 1:
			return "PatientQuery"
		}
		return "Query"
	default:
		return ""
	}
	if data != 1 {
		return ""
	}
	switch patients {
	case 0:
		return base
	case 1:
		return "Patient" + base
	}
	return ""
}
