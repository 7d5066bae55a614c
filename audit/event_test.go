package audit

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

var testEC = eventContext{source: "gw-1", serverAddr: "10.0.0.5"}

type eventCase struct {
	name        string
	phase       string
	edit        func(a *Access)
	wantAction  string
	wantOutcome string // "" for intents
	wantDesc    string
	wantProfile string // BALP profile suffix, "" for none
}

var eventCases = []eventCase{
	{name: "read", wantAction: "R", wantOutcome: "0", wantProfile: "PatientRead"},
	{name: "read-intent", phase: PhaseIntent, wantAction: "R", edit: func(a *Access) {
		a.Status, a.Resources, a.Masks, a.ResponseSHA256, a.ResponseBytes = 0, nil, nil, "", 0
	}},
	{name: "vread", wantAction: "R", wantOutcome: "0", wantProfile: "Read", edit: func(a *Access) {
		a.Interaction, a.Path = "vread", "/fhir/Organization/9/_history/2"
		a.ResourceType, a.ResourceID, a.Patients = "Organization", "9", nil
		a.Resources = []ResourceRef{{Type: "Organization", ID: "9", Version: "2"}}
	}},
	{name: "search-type-two-patients", wantAction: "E", wantOutcome: "0", wantProfile: "Query", edit: func(a *Access) {
		a.Interaction, a.Path, a.Query = "search-type", "/fhir/Observation", "code=1234-5&_count=3"
		a.ResourceType, a.ResourceID = "Observation", ""
		a.Patients = []string{"123", "Patient/456", "123"}
		a.Resources = []ResourceRef{{"Observation", "o1", "1"}, {"Observation", "o2", "4"}, {"Observation", "o3", ""}}
	}},
	{name: "search-type-one-patient", wantAction: "E", wantOutcome: "0", wantProfile: "PatientQuery", edit: func(a *Access) {
		a.Interaction, a.Path, a.Query = "search-type", "/fhir/Observation", "patient=123"
		a.ResourceType, a.ResourceID = "Observation", ""
		a.Resources = []ResourceRef{{"Observation", "o1", "1"}}
	}},
	{name: "search-token-in-query", wantAction: "E", wantOutcome: "0", wantProfile: "PatientQuery", edit: func(a *Access) {
		a.Interaction, a.Path, a.Query = "search-type", "/fhir/Patient", "name=x&access_token=secret-token-value"
		a.ResourceType, a.ResourceID = "Patient", ""
	}},
	{name: "search-system", wantAction: "E", wantOutcome: "0", wantProfile: "Query", edit: func(a *Access) {
		a.Interaction, a.Path, a.Query = "search-system", "/fhir", "_type=Organization"
		a.ResourceType, a.ResourceID, a.Patients, a.Resources = "", "", nil, nil
	}},
	{name: "create", wantAction: "C", wantOutcome: "0", wantProfile: "PatientCreate", edit: func(a *Access) {
		a.Interaction, a.Method, a.Path, a.Status = "create", "POST", "/fhir/Observation", 201
		a.ResourceType, a.ResourceID = "Observation", ""
		a.Resources = []ResourceRef{{"Observation", "new-1", "1"}}
	}},
	{name: "update", wantAction: "U", wantOutcome: "0", wantProfile: "PatientUpdate", edit: func(a *Access) {
		a.Interaction, a.Method, a.Path = "update", "PUT", "/fhir/Observation/o1"
		a.ResourceType, a.ResourceID = "Observation", "o1"
		a.Resources = []ResourceRef{{"Observation", "o1", "5"}}
	}},
	{name: "patch", wantAction: "U", wantOutcome: "0", wantProfile: "PatientUpdate", edit: func(a *Access) {
		a.Interaction, a.Method, a.Path = "patch", "PATCH", "/fhir/Observation/o1"
		a.ResourceType, a.ResourceID, a.Resources = "Observation", "o1", nil
	}},
	{name: "delete", wantAction: "D", wantOutcome: "0", wantProfile: "PatientDelete", edit: func(a *Access) {
		a.Interaction, a.Method, a.Path, a.Status = "delete", "DELETE", "/fhir/Observation/o1", 204
		a.ResourceType, a.ResourceID, a.Resources, a.Masks = "Observation", "o1", nil, nil
	}},
	{name: "history-instance", wantAction: "R", wantOutcome: "0", edit: func(a *Access) {
		a.Interaction, a.Path = "history-instance", "/fhir/Patient/123/_history"
		a.Resources = []ResourceRef{{"Patient", "123", "2"}, {"Patient", "123", "3"}}
	}},
	{name: "capabilities", wantAction: "R", wantOutcome: "0", edit: func(a *Access) {
		a.Interaction, a.Path, a.ResourceType, a.ResourceID = "capabilities", "/fhir/metadata", "", ""
		a.Patients, a.Resources, a.Masks = nil, nil, nil
	}},
	{name: "operation", wantAction: "E", wantOutcome: "0", edit: func(a *Access) {
		a.Interaction, a.Path, a.Query = "operation", "/fhir/Patient/123/$everything", "_since=2026-01-01&access_token=secret-token-x"
	}},
	{name: "batch", wantAction: "E", wantOutcome: "0", edit: func(a *Access) {
		a.Interaction, a.Method, a.Path, a.ResourceType, a.ResourceID = "batch", "POST", "/fhir", "", ""
	}},
	{name: "transaction-refused", wantAction: "E", wantOutcome: "4", wantDesc: "scope-missing", edit: func(a *Access) {
		a.Interaction, a.Method, a.Path, a.ResourceType, a.ResourceID = "transaction", "POST", "/fhir", "", ""
		a.Decision, a.Reason, a.Status, a.Resources, a.Masks, a.ResponseSHA256 = DecisionDeny, "scope-missing", 403, nil, nil, ""
	}},
	{name: "deny-compartment", wantAction: "R", wantOutcome: "4", wantDesc: "compartment-violation", edit: func(a *Access) {
		a.Decision, a.Reason, a.Status, a.Resources, a.Masks = DecisionDeny, "compartment-violation", 403, nil, nil
		a.ResponseSHA256, a.ResponseBytes = "", 0
	}},
	{name: "deny-revoked", wantAction: "R", wantOutcome: "4", wantDesc: "agent-revoked", edit: func(a *Access) {
		a.Decision, a.Reason, a.Status, a.Resources, a.Masks = DecisionDeny, "agent-revoked", 403, nil, nil
	}},
	{name: "deny-rate-limited", wantAction: "R", wantOutcome: "4", wantDesc: "rate-limited", edit: func(a *Access) {
		a.Decision, a.Reason, a.Status, a.Resources, a.Masks = DecisionDeny, "rate-limited", 429, nil, nil
	}},
	{name: "auth-failure", wantAction: "R", wantOutcome: "4", wantDesc: "token-expired", edit: func(a *Access) {
		a.Agent = Agent{ID: Unauthenticated}
		a.Interaction, a.ResourceType, a.ResourceID, a.Patients = "", "", "", nil
		a.Decision, a.Reason, a.Status, a.Resources, a.Masks = DecisionDeny, "token-expired", 401, nil, nil
		a.PolicyVersion = ""
	}},
	{name: "shadow-deny", wantAction: "R", wantOutcome: "0", wantProfile: "PatientRead", edit: func(a *Access) {
		a.Decision = DecisionShadowDeny
	}},
	{name: "upstream-not-found", wantAction: "R", wantOutcome: "4", wantDesc: "http-404", edit: func(a *Access) {
		a.Status, a.Resources, a.Masks = 404, nil, nil
	}},
	{name: "upstream-unavailable", wantAction: "R", wantOutcome: "8", wantDesc: "upstream-unavailable", edit: func(a *Access) {
		a.Reason, a.Status, a.Failed, a.FailureDetail = "upstream-unavailable", 502, true, "dial tcp: connection refused"
		a.Resources, a.Masks = nil, nil
	}},
	{name: "client-gone-mid-stream", wantAction: "E", wantOutcome: "8", wantDesc: "failed", edit: func(a *Access) {
		a.Interaction, a.Path, a.Query, a.ResourceID = "search-type", "/fhir/Patient", "_count=500", ""
		a.Failed, a.FailureDetail = true, "client disconnected after 3 entries"
	}},
	{name: "unmaskable", wantAction: "R", wantOutcome: "8", wantDesc: "response-unmaskable", edit: func(a *Access) {
		a.Reason, a.Status, a.Resources, a.Masks = "response-unmaskable", 502, nil, nil
	}},
	{name: "audit-unavailable", wantAction: "R", wantOutcome: "12", wantDesc: "audit-unavailable", edit: func(a *Access) {
		a.Reason, a.Status, a.Resources, a.Masks = "audit-unavailable", 503, nil, nil
	}},
	{name: "rest-route", wantAction: "R", wantOutcome: "0", edit: func(a *Access) {
		a.Route, a.Path, a.Interaction, a.ResourceType, a.ResourceID = "billing-api", "/api/billing/claims/77", "", "", ""
		a.Masks = []MaskApplied{{Profile: "diagnosis", Path: "diagnosis", Count: 1}}
		a.Resources = nil
	}},
}

func buildCase(c eventCase) (*Access, fm.AuditEvent) {
	a := agentAccess()
	if c.edit != nil {
		c.edit(a)
	}
	phase := c.phase
	if phase == "" {
		phase = PhaseComplete
	}
	return a, buildEvent(a, "ev-"+c.name, t0.Add(time.Second), phase, testEC)
}

// TestEventGolden checks every interaction, outcome and failure against
// reviewed golden files, and that each round-trips through the samply
// AuditEvent type and has the elements BALP requires.
func TestEventGolden(t *testing.T) {
	for _, c := range eventCases {
		t.Run(c.name, func(t *testing.T) {
			a, ev := buildCase(c)
			raw, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, raw, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			want := writeGolden(t, "events/"+c.name+".json", pretty.Bytes())
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("event differs from testdata/events/%s.json (run -update and review):\n%s", c.name, pretty.String())
			}
			assertRoundTrip(t, raw)
			assertBALP(t, c, a, &ev, raw)
		})
	}
}

func assertRoundTrip(t *testing.T, raw []byte) {
	t.Helper()
	back, err := fm.UnmarshalAuditEvent(raw)
	if err != nil {
		t.Fatalf("samply cannot read the event: %v", err)
	}
	again, err := json.Marshal(back)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, again) {
		t.Errorf("round trip changed the event:\n%s\n%s", raw, again)
	}
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	if generic["resourceType"] != "AuditEvent" {
		t.Errorf("resourceType = %v", generic["resourceType"])
	}
}

func code(c *fm.Coding) string {
	if c == nil || c.Code == nil {
		return ""
	}
	return *c.Code
}

func conceptCode(cc *fm.CodeableConcept) string {
	if cc == nil || len(cc.Coding) == 0 {
		return ""
	}
	return code(&cc.Coding[0])
}

func assertBALP(t *testing.T, c eventCase, a *Access, ev *fm.AuditEvent, raw []byte) {
	t.Helper()
	if *ev.Type.System != SystemEventType || code(&ev.Type) != "rest" {
		t.Errorf("type = %v", ev.Type)
	}
	if len(ev.Subtype) == 0 {
		t.Fatal("no subtype")
	}
	if a.Interaction != "" && (code(&ev.Subtype[0]) != a.Interaction || *ev.Subtype[0].System != SystemInteraction) {
		t.Errorf("subtype = %s, want %s", code(&ev.Subtype[0]), a.Interaction)
	}
	if ev.Action == nil || ev.Action.Code() != c.wantAction {
		t.Errorf("action = %v, want %s", ev.Action, c.wantAction)
	}
	if _, err := time.Parse(time.RFC3339Nano, ev.Recorded); err != nil {
		t.Errorf("recorded %q: %v", ev.Recorded, err)
	}
	switch {
	case c.wantOutcome == "" && ev.Outcome != nil:
		t.Errorf("intent has outcome %s", ev.Outcome.Code())
	case c.wantOutcome != "" && (ev.Outcome == nil || ev.Outcome.Code() != c.wantOutcome):
		t.Errorf("outcome = %v, want %s", ev.Outcome, c.wantOutcome)
	}
	if got := deref(ev.OutcomeDesc); got != c.wantDesc {
		t.Errorf("outcomeDesc = %q, want %q", got, c.wantDesc)
	}
	var profile string
	if ev.Meta != nil && len(ev.Meta.Profile) == 1 {
		profile = strings.TrimPrefix(ev.Meta.Profile[0], BALPProfileBase)
	}
	if profile != c.wantProfile {
		t.Errorf("profile = %q, want %q", profile, c.wantProfile)
	}

	// Agents: one requestor (the AI agent), a client and the server with
	// the DICOM roles of the pattern (Read: client is Destination).
	if len(ev.Agent) != 3 {
		t.Fatalf("agents = %d", len(ev.Agent))
	}
	user, client, server := ev.Agent[0], ev.Agent[1], ev.Agent[2]
	wantAgent := a.Agent.ID
	if !user.Requestor || *user.Who.Identifier.Value != wantAgent || client.Requestor || server.Requestor {
		t.Errorf("requestor/agent wrong: %+v", user)
	}
	clientRole, serverRole := "110153", "110152"
	switch c.wantAction {
	case "R":
		clientRole, serverRole = "110152", "110153"
	case "D":
		clientRole, serverRole = "110150", "custodian"
	}
	if conceptCode(client.Type) != clientRole || conceptCode(server.Type) != serverRole {
		t.Errorf("client/server roles = %s/%s, want %s/%s", conceptCode(client.Type), conceptCode(server.Type), clientRole, serverRole)
	}
	if client.Network == nil || *client.Network.Address != "10.1.2.3" {
		t.Errorf("client network = %+v", client.Network)
	}
	if a.Agent.JTI != "" && (len(user.Policy) != 1 || user.Policy[0] != "urn:ietf:params:oauth:jti:"+a.Agent.JTI) {
		t.Errorf("policy = %v", user.Policy)
	}
	if len(user.Role) != len(a.Agent.Roles) || len(user.PurposeOfUse) != len(a.Agent.PurposeOfUse) {
		t.Errorf("roles/purpose = %v/%v", user.Role, user.PurposeOfUse)
	}
	if ev.Source.Observer.Identifier == nil || *ev.Source.Observer.Identifier.Value != "gw-1" {
		t.Errorf("source = %+v", ev.Source)
	}

	// Entities.
	var gotTx, gotQuery bool
	patients := map[string]bool{}
	for _, e := range ev.Entity {
		switch {
		case code(e.Type) == "XrequestId":
			gotTx = *e.What.Identifier.Value == a.RequestID
		case code(e.Type) == "2" && code(e.Role) == "24":
			gotQuery = true
			q, err := base64.StdEncoding.DecodeString(*e.Query)
			if err != nil || !strings.HasPrefix(string(q), a.Path) {
				t.Errorf("query entity %q: %v", q, err)
			}
			if len(e.Detail) != 0 || e.What != nil {
				t.Error("BALP forbids detail and what on the query entity")
			}
		case code(e.Type) == "1":
			if code(e.Role) != "1" || !strings.HasPrefix(*e.What.Reference, "Patient/") {
				t.Errorf("patient entity %+v", e)
			}
			patients[*e.What.Reference] = true
		}
	}
	if !gotTx {
		t.Error("no XrequestId transaction entity")
	}
	if gotQuery != strings.HasPrefix(a.Interaction, "search") {
		t.Errorf("query entity present = %v for %s", gotQuery, a.Interaction)
	}
	for _, p := range a.Patients {
		if !patients[patientRef(p)] {
			t.Errorf("patient %s has no entity", p)
		}
	}
	if strings.Contains(string(raw), "secret-token") {
		t.Error("the event holds a token")
	}
}

func TestIncompleteEvent(t *testing.T) {
	a := agentAccess()
	ev := buildEvent(a, "ev-incomplete", t0, PhaseIntent, testEC)
	markIncomplete(&ev, t0.Add(time.Hour))
	raw, _ := json.Marshal(ev)
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, raw, "", "  ")
	pretty.WriteByte('\n')
	if want := writeGolden(t, "events/incomplete.json", pretty.Bytes()); !bytes.Equal(want, pretty.Bytes()) {
		t.Errorf("incomplete event differs from golden:\n%s", pretty.String())
	}
	assertRoundTrip(t, raw)
	if ev.Outcome.Code() != "8" || *ev.OutcomeDesc != OutcomeIncomplete {
		t.Errorf("outcome %s %s", ev.Outcome.Code(), *ev.OutcomeDesc)
	}
}

func TestRedactQuery(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "",
		"a=1":                      "a=1",
		"access_token=x&b=2":       "access_token=REDACTED&b=2",
		"b=2&Access%5Ftoken=x":     "b=2&Access_token=REDACTED",
		"client_assertion=eyJ&x=1": "client_assertion=REDACTED&x=1",
		"code=1234-5&id_token=abc": "code=1234-5&id_token=REDACTED",
	} {
		if got := redactQuery(in); got != want {
			t.Errorf("redactQuery(%q) = %q, want %q", in, got, want)
		}
	}
}
