package audit

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/netip"
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

// Values shared by every built event.
//
// buildEvent runs for every access, so the parts of an AuditEvent that
// never vary (code systems, the fixed codings and concepts, the disclosed
// extension) exist once, here, and built events point to them instead of
// holding copies of their own. These values must never be written to,
// hence the rule for code that edits a built event: assign the fields of
// the event and of the elements of its slices Agent, Entity, Extension
// (and their nested Extension), Subtype and Source.Type, as closeIntent
// does (ev.OutcomeDesc = ptr(desc), ev.Extension[i].ValueCode =
// ptr(phase)); never write through the pointers they hold, nor into an
// entity's Extension: what they refer to may be shared
// (*ev.Entity[i].Type.Code = "x", ev.Agent[0].Type.Coding[0].Code = p and
// ev.Entity[i].Extension[0].ValueBoolean = p would edit every event).
var (
	sidAgent           = SIDAgent
	sidClient          = SIDClient
	sidGateway         = SIDGateway
	systemInteraction  = SystemInteraction
	systemREST         = SubtypeRESTSystem
	systemRole         = SystemRole
	systemActReason    = SystemActReason
	gatewayName        = "fhirwall"
	unidentifiedClient = "unidentified client"
	trueValue          = true

	networkMachine = fm.AuditEventAgentNetworkType1
	networkIP      = fm.AuditEventAgentNetworkType2

	codingRest           = coding(SystemEventType, "rest", "Restful Operation")
	codingSecurityServer = coding(SystemSourceType, "6", "Security Server")
	codingXRequestID     = coding(SystemBALPEntity, "XrequestId", "")
	codingSystemObject   = coding(SystemEntityType, "2", "System Object")
	codingPerson         = coding(SystemEntityType, "1", "Person")
	codingQuery          = coding(SystemObjectRole, "24", "Query")
	codingDomainResource = coding(SystemObjectRole, "4", "Domain Resource")
	codingPatient        = coding(SystemObjectRole, "1", "Patient")

	conceptSourceRole      = concept(SystemDICOM, "110153", "Source Role ID")
	conceptDestinationRole = concept(SystemDICOM, "110152", "Destination Role ID")
	conceptApplication     = concept(SystemDICOM, "110150", "Application")
	conceptCustodian       = concept(SystemProvenanceAgent, "custodian", "Custodian")
	conceptRecipient       = concept(SystemParticipation, "IRCP", "information recipient")
	conceptAuthor          = concept(SystemParticipation, "AUT", "author (originator)")
	conceptCustodianUser   = concept(SystemParticipation, "CST", "custodian")

	// disclosedExtension has len == cap, so appending to an entity's
	// extensions copies it.
	disclosedExtension = []fm.Extension{{Url: ExtDisclosed, ValueBoolean: &trueValue}}
)

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

// redactQuery removes the value of any parameter that may carry a
// credential, in case a caller forgot: the audit log must never hold a token.
func redactQuery(q string) string {
	if !hasCredential(q) {
		return q // what the loop below would rebuild, without allocating
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		if credentialKey(k) {
			parts[i] = k + "=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}

// hasCredential reports whether redactQuery would redact a parameter of q.
func hasCredential(q string) bool {
	for p := range strings.SplitSeq(q, "&") {
		k, _, _ := strings.Cut(p, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		if credentialKey(k) {
			return true
		}
	}
	return false
}

// credentialKey reports whether a query parameter (its name unescaped) may
// carry a credential.
func credentialKey(k string) bool {
	switch strings.ToLower(k) {
	case "access_token", "token", "id_token", "refresh_token", "client_secret", "client_assertion":
		return true
	}
	return false
}

func patientRef(p string) string {
	p = strings.TrimPrefix(p, "Patient/")
	return "Patient/" + p
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// buildEvent turns an access into the AuditEvent for the given phase. It is
// deterministic: the same inputs give the same event.
//
// It runs for every access and allocates little: constant parts are shared
// (see the shared values above), the parts an event has at most one of are
// allocated together in an eventParts, and the values it has many of come
// from a few backing arrays sized from the access.
func buildEvent(a *Access, id string, recorded time.Time, phase string, ec eventContext) fm.AuditEvent {
	var b eventBuilder
	b.init(a, ec)
	p := b.p
	p.action = actionOf(a)
	act := p.action
	ev := fm.AuditEvent{
		Id:       b.str(id),
		Type:     codingRest,
		Action:   &p.action,
		Recorded: b.timestamp(recorded),
	}
	if a.Interaction != "" {
		p.subtype[0] = fm.Coding{System: &systemInteraction, Code: b.str(a.Interaction)}
	} else {
		p.subtype[0] = fm.Coding{System: &systemREST, Code: b.str(strings.ToLower(a.Method))}
	}
	ev.Subtype = p.subtype[:]
	if !a.Start.IsZero() {
		p.period.Start = b.str(b.timestamp(a.Start))
		if !a.End.IsZero() && phase != PhaseIntent {
			p.period.End = b.str(b.timestamp(a.End))
		}
		ev.Period = &p.period
	}
	if phase != PhaseIntent {
		oc, desc := outcomeOf(a, phase)
		p.outcome = oc
		ev.Outcome = &p.outcome
		if desc != "" {
			ev.OutcomeDesc = b.str(desc)
		}
	}
	ev.Agent = b.agents(act)
	p.ids[3] = fm.Identifier{System: &sidGateway, Value: b.str(ec.source)}
	p.sourceType[0] = codingSecurityServer
	ev.Source = fm.AuditEventSource{
		Site:     b.str(ec.source),
		Observer: fm.Reference{Identifier: &p.ids[3], Display: &gatewayName},
		Type:     p.sourceType[:],
	}
	ev.Entity = b.entities()
	ev.Extension = b.extensions(phase)
	if prof := balpProfile(&ev, a, act, phase, ec); prof != "" {
		p.profile[0] = b.text.join(BALPProfileBase, prof)
		p.meta.Profile = p.profile[:]
		ev.Meta = &p.meta
	}
	return ev
}

// eventParts holds what an event has at most one of, for one allocation
// instead of one per part.
type eventParts struct {
	action     fm.AuditEventAction
	outcome    fm.AuditEventOutcome
	period     fm.Period
	meta       fm.Meta
	profile    [1]string
	subtype    [1]fm.Coding
	sourceType [1]fm.Coding
	agents     [3]fm.AuditEventAgent // user, client, server
	who        [3]fm.Reference       // of the agents
	ids        [5]fm.Identifier      // of the agents, the observer, the request
	network    [2]fm.AuditEventAgentNetwork
	policy     [1]string
	request    fm.Reference
	status     int
	part       int
	bytes      json.Number
}

// eventBuilder builds one event: buildEvent's state.
type eventBuilder struct {
	a    *Access
	ec   eventContext
	p    *eventParts
	text text               // the strings built for the event
	strs slab[string]       // what its *string fields point to
	refs slab[fm.Reference] // its entities' What
}

// init sizes the backing arrays for the event of a.
func (b *eventBuilder) init(a *Access, ec eventContext) {
	b.a, b.ec, b.p = a, ec, new(eventParts)
	data := len(a.Resources) + 1 + len(a.Patients) // upper bound of the data entities
	b.strs.free = make([]string, 32+len(a.Agent.Roles)+len(a.Agent.PurposeOfUse)+2*len(a.Masks)+data)
	b.refs.free = make([]fm.Reference, data)
	size := 256 + len(a.Agent.JTI) + 2*(len(a.Path)+len(a.Query))
	for _, r := range a.Resources {
		size += len(r.Type) + len(r.ID) + len(r.Version) + len("//_history/")
	}
	for _, p := range a.Patients {
		size += len("Patient/") + len(p)
	}
	b.text.sb.Grow(size)
}

// slab hands out pointers to zero values of T from a backing array: one
// allocation for many values that live as long as the event.
type slab[T any] struct{ free []T }

func (s *slab[T]) next() *T {
	if len(s.free) == 0 {
		s.free = make([]T, 16)
	}
	p := &s.free[0]
	s.free = s.free[1:]
	return p
}

// grow extends *s by one zero element and returns it, for its fields to be
// set in place: the models' structs are large (an Extension has a field
// per value type, some 450 bytes), and setting a few fields costs much
// less than copying a composite literal in. The spare capacity of the
// slices grow is used on is zero (they come from make and are only ever
// grown), so the new element needs no clearing.
func grow[T any](s *[]T) *T {
	if len(*s) == cap(*s) {
		*s = slices.Grow(*s, 1)
	}
	*s = (*s)[:len(*s)+1]
	return &(*s)[len(*s)-1]
}

// add grows *xs by an extension of url and returns it, for its value to be
// set.
func add(xs *[]fm.Extension, url string) *fm.Extension {
	x := grow(xs)
	x.Url = url
	return x
}

// text builds strings in one buffer; each is a slice of it. A
// strings.Builder never modifies the bytes it has written (it copies them
// when it grows), so the slices stay valid.
type text struct{ sb strings.Builder }

func (t *text) join(parts ...string) string {
	start := t.sb.Len()
	for _, s := range parts {
		t.sb.WriteString(s)
	}
	return t.sb.String()[start:]
}

func (t *text) bytes(p []byte) string {
	start := t.sb.Len()
	t.sb.Write(p)
	return t.sb.String()[start:]
}

func (b *eventBuilder) str(s string) *string {
	p := b.strs.next()
	*p = s
	return p
}

// timestamp is ts(t), built in b.text.
func (b *eventBuilder) timestamp(t time.Time) string {
	var buf [64]byte
	return b.text.bytes(t.UTC().AppendFormat(buf[:0], time.RFC3339Nano))
}

func (b *eventBuilder) agents(act fm.AuditEventAction) []fm.AuditEventAgent {
	a, p := b.a, b.p
	clientType, serverType := &conceptSourceRole, &conceptDestinationRole
	switch {
	case readPattern(act):
		clientType, serverType = serverType, clientType
	case act == fm.AuditEventActionD:
		// BALP Delete types the agents by function, not data flow.
		clientType, serverType = &conceptApplication, &conceptCustodian
	}
	userType := &conceptRecipient
	switch act {
	case fm.AuditEventActionC, fm.AuditEventActionU:
		userType = &conceptAuthor
	case fm.AuditEventActionD:
		userType = &conceptCustodianUser
	}
	agentID := a.Agent.ID
	if agentID == "" {
		agentID = Unauthenticated
	}
	p.ids[0] = fm.Identifier{System: &sidAgent, Value: b.str(agentID)}
	p.who[0] = fm.Reference{Identifier: &p.ids[0]}
	user := &p.agents[0]
	user.Type, user.Who, user.Name, user.Requestor = userType, &p.who[0], b.str(agentID), true
	if a.Agent.ClientID != "" && a.Agent.ClientID != agentID {
		user.AltId = b.str(a.Agent.ClientID)
	}
	roles, purposes := a.Agent.Roles, a.Agent.PurposeOfUse
	if n := len(roles) + len(purposes); n > 0 {
		cs, cd := make([]fm.CodeableConcept, n), make([]fm.Coding, n)
		user.Role = b.concepts(cs, cd, &systemRole, roles)
		user.PurposeOfUse = b.concepts(cs[len(roles):], cd[len(roles):], &systemActReason, purposes)
	}
	if a.Agent.JTI != "" {
		p.policy[0] = b.text.join("urn:ietf:params:oauth:jti:", a.Agent.JTI)
		user.Policy = p.policy[:]
	}

	if a.Agent.ClientID != "" {
		sys := &sidClient
		if a.Agent.Issuer != "" {
			sys = b.str(a.Agent.Issuer)
		}
		p.ids[1] = fm.Identifier{System: sys, Value: b.str(a.Agent.ClientID)}
		p.who[1] = fm.Reference{Identifier: &p.ids[1]}
	} else {
		p.who[1] = fm.Reference{Display: &unidentifiedClient}
	}
	client := &p.agents[1]
	client.Type, client.Who, client.Network = clientType, &p.who[1], b.network(&p.network[0], a.SourceAddr)

	p.ids[2] = fm.Identifier{System: &sidGateway, Value: b.str(b.ec.source)}
	p.who[2] = fm.Reference{Identifier: &p.ids[2], Display: &gatewayName}
	server := &p.agents[2]
	server.Type, server.Who, server.Network = serverType, &p.who[2], b.network(&p.network[1], b.ec.serverAddr)
	return p.agents[:]
}

// concepts fills cs and cd with one single-coding concept per code and
// returns them, nil if there are none. The result's capacity ends at its
// length: appending to it never overwrites what follows in cs.
func (b *eventBuilder) concepts(cs []fm.CodeableConcept, cd []fm.Coding, system *string, codes []string) []fm.CodeableConcept {
	if len(codes) == 0 {
		return nil
	}
	for i, code := range codes {
		cd[i] = fm.Coding{System: system, Code: b.str(code)}
		cs[i].Coding = cd[i : i+1 : i+1]
	}
	return cs[:len(codes):len(codes)]
}

// network fills n with the network of an agent at addr (host:port or host)
// and returns it, nil if addr is unknown.
func (b *eventBuilder) network(n *fm.AuditEventAgentNetwork, addr string) *fm.AuditEventAgentNetwork {
	if addr == "" {
		return nil
	}
	host := addr
	// Without a colon, SplitHostPort fails (allocating its error).
	if strings.IndexByte(addr, ':') >= 0 {
		if h, _, err := net.SplitHostPort(addr); err == nil {
			host = h
		}
	}
	t := &networkMachine
	// net.ParseIP(host) != nil, without allocating the IP.
	if ip, err := netip.ParseAddr(host); err == nil && ip.Zone() == "" {
		t = &networkIP
	}
	*n = fm.AuditEventAgentNetwork{Address: b.str(host), Type: t}
	return n
}

func (b *eventBuilder) entities() []fm.AuditEventEntity {
	a := b.a
	out := make([]fm.AuditEventEntity, 0, 3+len(a.Resources)+len(a.Patients))
	if a.RequestID != "" {
		p := b.p
		p.ids[4] = fm.Identifier{Value: b.str(a.RequestID)}
		p.request = fm.Reference{Identifier: &p.ids[4]}
		e := grow(&out)
		e.Type, e.What = &codingXRequestID, &p.request
	}
	if strings.HasPrefix(a.Interaction, "search") {
		e := grow(&out)
		e.Type, e.Role, e.Query = &codingSystemObject, &codingQuery, b.str(b.queryBase64())
	}
	// The resources disclosed, then the one targeted, each once; a
	// version of a resource also counts the resource as seen (so each
	// resource may add two keys).
	seen := make(map[string]bool, 2*len(a.Resources)+1)
	addData := func(ref string, disclosed bool) {
		if seen[ref] {
			return
		}
		seen[ref] = true
		what := b.refs.next()
		what.Reference = b.str(ref)
		e := grow(&out)
		e.Type, e.Role, e.What = &codingSystemObject, &codingDomainResource, what
		if disclosed {
			e.Extension = disclosedExtension
		}
	}
	for _, r := range a.Resources {
		if r.Type == "" || r.ID == "" {
			continue
		}
		var ref string
		if r.Version == "" {
			ref = b.text.join(r.Type, "/", r.ID)
		} else {
			ref = b.text.join(r.Type, "/", r.ID, "/_history/", r.Version)
		}
		addData(ref, true)
		seen[ref[:len(r.Type)+1+len(r.ID)]] = true // Type/ID
	}
	if a.ResourceType != "" && a.ResourceID != "" {
		addData(b.text.join(a.ResourceType, "/", a.ResourceID), false)
	}
	ids := make([]string, 0, len(a.Patients))
	for _, p := range a.Patients {
		if id := strings.TrimPrefix(p, "Patient/"); id != "" {
			ids = append(ids, id)
		}
	}
	// Sorted as their references would be: these all start with "Patient/".
	slices.Sort(ids)
	for _, id := range slices.Compact(ids) {
		what := b.refs.next()
		what.Reference = b.str(b.text.join("Patient/", id))
		e := grow(&out)
		e.Type, e.Role, e.What = &codingPerson, &codingPatient, what
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// queryBase64 is the query of the BALP query entity: the path and the
// redacted query, in base64.
func (b *eventBuilder) queryBase64() string {
	var rawBuf [256]byte
	var encBuf [344]byte // base64 of 256 bytes
	raw := append(rawBuf[:0], b.a.Path...)
	if q := redactQuery(b.a.Query); q != "" {
		raw = append(append(raw, '?'), q...)
	}
	return b.text.bytes(base64.StdEncoding.AppendEncode(encBuf[:0], raw))
}

func (b *eventBuilder) extensions(phase string) []fm.Extension {
	a := b.a
	// One allocation for all: ext, then sub, from which the extensions of
	// http, of each mask and of response are carved, each with its
	// capacity ending at its length so that appending to one never
	// overwrites the next.
	top, nested := extensionCounts(a, phase)
	all := make([]fm.Extension, top+nested)
	ext, sub := all[:0:top], all[top:top]
	carve := func(from int) []fm.Extension { return sub[from:len(sub):len(sub)] }

	if a.Decision != "" {
		add(&ext, ExtDecision).ValueCode = b.str(a.Decision)
	}
	add(&ext, ExtPhase).ValueCode = b.str(phase)
	from := len(sub)
	if a.Method != "" {
		add(&sub, "method").ValueCode = b.str(strings.ToUpper(a.Method))
	}
	if a.Route != "" {
		add(&sub, "route").ValueString = b.str(a.Route)
	}
	if a.Path != "" {
		add(&sub, "path").ValueString = b.str(a.Path)
	}
	// Searches carry their query in the BALP query entity; other
	// interactions (operations, REST routes) keep it here.
	if !strings.HasPrefix(a.Interaction, "search") {
		if q := redactQuery(a.Query); q != "" {
			add(&sub, "query").ValueString = b.str(q)
		}
	}
	if a.Status != 0 && phase != PhaseIntent {
		b.p.status = a.Status
		add(&sub, "status").ValueInteger = &b.p.status
	}
	if len(sub) > from {
		add(&ext, ExtHTTP).Extension = carve(from)
	}
	if len(a.Masks) > 0 {
		counts := make([]int, len(a.Masks))
		for i, m := range a.Masks {
			counts[i] = m.Count
			from := len(sub)
			add(&sub, "profile").ValueString = b.str(m.Profile)
			add(&sub, "path").ValueString = b.str(m.Path)
			add(&sub, "count").ValueInteger = &counts[i]
			add(&ext, ExtMask).Extension = carve(from)
		}
	}
	if a.ResponseSHA256 != "" || a.ResponseBytes > 0 {
		from := len(sub)
		if a.ResponseSHA256 != "" {
			add(&sub, "sha256").ValueString = b.str(a.ResponseSHA256)
		}
		var num [20]byte
		b.p.bytes = json.Number(b.text.bytes(strconv.AppendInt(num[:0], a.ResponseBytes, 10)))
		add(&sub, "bytes").ValueDecimal = &b.p.bytes
		add(&ext, ExtResponse).Extension = carve(from)
	}
	if a.PolicyVersion != "" {
		add(&ext, ExtPolicyVersion).ValueString = b.str(a.PolicyVersion)
	}
	if a.FailureDetail != "" {
		add(&ext, ExtFailure).ValueString = b.str(a.FailureDetail)
	}
	if a.Part > 0 {
		b.p.part = a.Part
		add(&ext, ExtPart).ValueInteger = &b.p.part
	}
	return ext
}

// extensionCounts counts the extensions that extensions adds at the top
// level and nested, to allocate them at once. (Were it to count short, add
// would reallocate: slower, still right.)
func extensionCounts(a *Access, phase string) (top, nested int) {
	http := count(a.Method != "", a.Route != "", a.Path != "",
		// redactQuery keeps a query non-empty
		a.Query != "" && !strings.HasPrefix(a.Interaction, "search"),
		a.Status != 0 && phase != PhaseIntent)
	response := 0
	if a.ResponseSHA256 != "" || a.ResponseBytes > 0 {
		response = count(a.ResponseSHA256 != "", true)
	}
	top = 1 + len(a.Masks) + // phase and masks
		count(a.Decision != "", http > 0, response > 0, a.PolicyVersion != "", a.FailureDetail != "", a.Part > 0)
	return top, http + 3*len(a.Masks) + response
}

func count(conds ...bool) int {
	n := 0
	for _, c := range conds {
		if c {
			n++
		}
	}
	return n
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
