package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// BenchmarkBuildEvent measures buildEvent, and buildEventReference for
// comparison, on a completed read and on a search event with 120 resources
// (with versions) of 60 patients.
func BenchmarkBuildEvent(b *testing.B) {
	for _, c := range []struct {
		name string
		a    *Access
	}{
		{"read", agentAccess()},
		{"search-120", searchAccess(120, 60)},
	} {
		for _, impl := range []struct {
			name  string
			build func(*Access, string, time.Time, string, eventContext) fm.AuditEvent
		}{
			{"reference", buildEventReference},
			{"buildEvent", buildEvent},
		} {
			b.Run(c.name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					ev := impl.build(c.a, "ev-bench", t0.Add(time.Second), PhaseComplete, testEC)
					benchEvent = &ev
				}
			})
		}
	}
}

var benchEvent *fm.AuditEvent

// TestBuildEventMatchesReference: buildEvent builds exactly what
// buildEventReference does, equal as values and as encodings, for every
// shape of access the other tests use and for many random ones.
func TestBuildEventMatchesReference(t *testing.T) {
	n := 0
	for _, in := range interactions {
		for _, v := range accessVariants {
			a := agentAccess()
			a.Interaction = in
			if strings.HasPrefix(in, "search") {
				a.Query = "name=x&access_token=t&_count=3"
			}
			v.edit(a)
			for _, ec := range buildContexts {
				for _, phase := range phases {
					n++
					assertBuildsAsReference(t, fmt.Sprintf("%s/%s/%s/%+v", in, v.name, phase, ec), a, phase, ec)
				}
			}
		}
	}
	for _, c := range eventCases {
		a := agentAccess()
		if c.edit != nil {
			c.edit(a)
		}
		for _, phase := range phases {
			n++
			assertBuildsAsReference(t, c.name+"/"+phase, a, phase, testEC)
		}
	}
	for _, size := range [][2]int{{0, 1}, {1, 0}, {120, 60}, {700, 400}} {
		n++
		assertBuildsAsReference(t, fmt.Sprint("search", size), searchAccess(size[0], size[1]), PhaseComplete, testEC)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		n++
		a := randomAccess(rnd)
		ec := buildContexts[rnd.IntN(len(buildContexts))]
		assertBuildsAsReference(t, fmt.Sprintf("random-%d", i), a, phases[rnd.IntN(len(phases))], ec)
		if t.Failed() {
			t.Fatalf("random-%d: %+v", i, a)
		}
	}
	t.Logf("%d events compared", n)
}

// TestBuildEventSharedUntouched: the edits made to built events (closing
// an intent, and those of the encoder tests) leave the values that built
// events share alone: events built afterwards are still right.
func TestBuildEventSharedUntouched(t *testing.T) {
	for _, in := range interactions {
		a := agentAccess()
		a.Interaction = in
		a.Agent.Issuer = ""
		ev := buildEvent(a, "ev-1", t0, PhaseIntent, testEC)
		markIncomplete(&ev, t0.Add(time.Hour))
		markRefused(&ev, t0.Add(time.Hour))
		ev.Type.Code, ev.Subtype[0].Code, ev.Source.Type[0].Code = ptr("x"), ptr("x"), ptr("x")
		for i := range ev.Agent {
			ev.Agent[i].Type = &fm.CodeableConcept{}
			ev.Agent[i].Role = append(ev.Agent[i].Role, concept("s", "x", ""))
			if ev.Agent[i].Network != nil {
				ev.Agent[i].Network.Type = ptr(fm.AuditEventAgentNetworkType(7))
			}
		}
		for i := range ev.Entity {
			ev.Entity[i].Extension = append(ev.Entity[i].Extension, fm.Extension{Url: "q"})
			ev.Entity[i].Type, ev.Entity[i].Role = nil, nil
		}
		for i := range ev.Extension {
			ev.Extension[i].Extension = append(ev.Extension[i].Extension, fm.Extension{Url: "x"})
		}
		ev.Agent = append(ev.Agent, fm.AuditEventAgent{})
		ev.Entity = append(ev.Entity, fm.AuditEventEntity{})
		ev.Extension = append(ev.Extension, fm.Extension{})

		for _, phase := range phases {
			assertBuildsAsReference(t, in+"/"+phase, agentAccess(), phase, testEC)
		}
	}
}

var buildContexts = []eventContext{
	testEC, {source: "gw-<2>"}, {source: "gw-3", serverAddr: "[fd00::5]:8443"},
	{source: "gw-4", serverAddr: "gw4.example.org:443"}, {source: "", serverAddr: "fe80::1%eth0"},
}

// assertBuildsAsReference fails unless buildEvent and buildEventReference
// build equal events of a, also once closed as incomplete.
func assertBuildsAsReference(t *testing.T, name string, a *Access, phase string, ec eventContext) {
	t.Helper()
	recorded := t0.Add(time.Second)
	if phase == PhaseIncomplete {
		got := buildEvent(a, name, recorded, PhaseIntent, ec)
		want := buildEventReference(a, name, recorded, PhaseIntent, ec)
		markIncomplete(&got, t0.Add(time.Hour))
		markIncomplete(&want, t0.Add(time.Hour))
		assertSameEvent(t, name, &got, &want)
	}
	got := buildEvent(a, name, recorded, phase, ec)
	want := buildEventReference(a, name, recorded, phase, ec)
	assertSameEvent(t, name, &got, &want)

	nested := 0
	for _, x := range want.Extension {
		nested += len(x.Extension)
	}
	if gotTop, gotNested := extensionCounts(a, phase); gotTop != len(want.Extension) || gotNested != nested {
		t.Errorf("%s: extensionCounts = %d, %d; the event has %d, %d", name, gotTop, gotNested, len(want.Extension), nested)
	}
}

func assertSameEvent(t *testing.T, name string, got, want *fm.AuditEvent) {
	t.Helper()
	wantJSON, err := json.Marshal(want)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	gotJSON, err := encodeEvent(got)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("%s: encodings differ\nbuildEvent: %s\nreference:  %s", name, gotJSON, wantJSON)
	} else if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: events differ with equal encodings\nbuildEvent: %#v\nreference:  %#v", name, got, want)
	}
}

// randomAccess draws each field from values that make buildEvent take
// its different paths: empty or not, duplicated, escaped, oversized.
func randomAccess(r *rand.Rand) *Access {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	some := func(max int, f func() string) []string {
		var out []string
		for range r.IntN(max + 1) {
			out = append(out, f())
		}
		if out == nil && r.IntN(2) == 0 {
			out = []string{}
		}
		return out
	}
	long := strings.Repeat("x<&é", 80)
	words := append([]string{"a", "B", long}, awkwardStrings...)
	when := func() time.Time {
		if r.IntN(4) == 0 {
			return time.Time{}
		}
		return t0.Add(time.Duration(r.Int64N(int64(time.Hour)))).In(time.FixedZone("x", 3600*r.IntN(5)))
	}
	a := &Access{
		RequestID:  pick("", "req-1", long),
		Start:      when(),
		End:        when(),
		SourceAddr: pick("", "10.1.2.3:51234", "10.1.2.3", "[2001:db8::1]:443", "2001:db8::1", "fe80::1%eth0", "[fe80::1%eth0]:1", "host.example:80", "host", "a:b:c", ":80", "[::1"),
		Route:      pick("", "ehr", long),
		Method:     pick("", "GET", "get", "Post", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ǅ"),
		Path:       pick("", "/fhir/Patient", "/fhir/"+long),
		Query: pick("", "a=1", "access_token=x", "ACCESS_TOKEN=x&b=2", "acce%73s_token=y", "%zz=1&token=2", "a&&b",
			"&", "=", "client_secret", "id_token=1&refresh_token=2&client_assertion=3", "acceſſ_token=1", "q="+long, long+"&token="+long),
		Interaction:    interactions[r.IntN(len(interactions))],
		ResourceType:   pick("", "Patient", "Observation"),
		ResourceID:     pick("", "1", "o1", "2"),
		Decision:       pick("", DecisionAllow, DecisionDeny, DecisionShadowDeny),
		Reason:         pick("", "scope-missing", "internal-error", "audit-unavailable", "upstream-unavailable"),
		Status:         []int{0, 200, 201, 204, 302, 400, 401, 403, 404, 429, 500, 502, 503}[r.IntN(13)],
		Failed:         r.IntN(5) == 0,
		FailureDetail:  pick("", "client gone", long),
		ResponseSHA256: pick("", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
		ResponseBytes:  []int64{0, 1, -5, 99, 100, 1 << 40, 1<<63 - 1, -1 << 63}[r.IntN(8)],
		PolicyVersion:  pick("", "sha256:cfg-42"),
		Part:           r.IntN(4) - 1,
		Agent: Agent{
			ID:           pick("", "agent-1", "c1", long),
			ClientID:     pick("", "c1", "agent-1"),
			Issuer:       pick("", "https://idp.example.org"),
			JTI:          pick("", "jti-1", long),
			Roles:        some(4, func() string { return pick(words...) }),
			PurposeOfUse: some(3, func() string { return pick("TREAT", "HPAYMT", "") }),
		},
		Patients: some(12, func() string {
			return pick("1", "2", "10", "Patient/1", "Patient/", "", "Patient/Patient/3", "é", long)
		}),
	}
	for range r.IntN(15) {
		a.Resources = append(a.Resources, ResourceRef{
			Type:    pick("", "Patient", "Observation"),
			ID:      pick("", "1", "o1", "2", long),
			Version: pick("", "", "1", "2"),
		})
	}
	for range r.IntN(4) {
		a.Masks = append(a.Masks, MaskApplied{Profile: pick("p", long), Path: pick("", "Patient.telecom"), Count: r.IntN(5) - 1})
	}
	return a
}

// buildEventReference is buildEvent as first written, straightforwardly,
// with one allocation per value: the oracle buildEvent must match.
func buildEventReference(a *Access, id string, recorded time.Time, phase string, ec eventContext) fm.AuditEvent {
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
	ev.Agent = agentsOfRef(a, act, ec)
	ev.Source = fm.AuditEventSource{
		Site:     ptr(ec.source),
		Observer: fm.Reference{Identifier: &fm.Identifier{System: ptr(SIDGateway), Value: ptr(ec.source)}, Display: ptr("fhirwall")},
		Type:     []fm.Coding{coding(SystemSourceType, "6", "Security Server")},
	}
	ev.Entity = entitiesOfRef(a)
	ev.Extension = extensionsOfRef(a, phase)
	if p := balpProfile(&ev, a, act, phase, ec); p != "" {
		ev.Meta = &fm.Meta{Profile: []string{BALPProfileBase + p}}
	}
	return ev
}

func agentsOfRef(a *Access, act fm.AuditEventAction, ec eventContext) []fm.AuditEventAgent {
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
		Who:       identRef(SIDAgent, agentID),
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
		Network: networkOfRef(a.SourceAddr),
	}
	switch {
	case a.Agent.ClientID != "":
		sys := a.Agent.Issuer
		if sys == "" {
			sys = SIDClient
		}
		client.Who = identRef(sys, a.Agent.ClientID)
	default:
		client.Who = &fm.Reference{Display: ptr("unidentified client")}
	}
	server := fm.AuditEventAgent{
		Type:    ptr(serverType),
		Who:     identRef(SIDGateway, ec.source),
		Network: networkOfRef(ec.serverAddr),
	}
	server.Who.Display = ptr("fhirwall")
	return []fm.AuditEventAgent{user, client, server}
}

func entitiesOfRef(a *Access) []fm.AuditEventEntity {
	var out []fm.AuditEventEntity
	if a.RequestID != "" {
		out = append(out, fm.AuditEventEntity{
			Type: ptr(coding(SystemBALPEntity, "XrequestId", "")),
			What: &fm.Reference{Identifier: &fm.Identifier{Value: ptr(a.RequestID)}},
		})
	}
	if strings.HasPrefix(a.Interaction, "search") {
		raw := a.Path
		if q := redactQueryRef(a.Query); q != "" {
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
		addData(resourceRefRef(r), true)
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

func extensionsOfRef(a *Access, phase string) []fm.Extension {
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
	if q := redactQueryRef(a.Query); q != "" && !strings.HasPrefix(a.Interaction, "search") {
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

func networkOfRef(addr string) *fm.AuditEventAgentNetwork {
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

func identRef(system, value string) *fm.Reference {
	return &fm.Reference{Identifier: &fm.Identifier{System: ptr(system), Value: ptr(value)}}
}

// redactQueryRef is redactQuery as first written, allocating always.
func redactQueryRef(q string) string {
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

func resourceRefRef(r ResourceRef) string {
	s := r.Type + "/" + r.ID
	if r.Version != "" {
		s += "/_history/" + r.Version
	}
	return s
}
