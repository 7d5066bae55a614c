package audit

import (
	"slices"
	"strings"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// refsOf derives the search index of an event from the event itself, so
// the index can be rebuilt (and checked) from the hashed bodies:
//
//	agent    the requesting agent's id and client id, the client's id
//	patient  Patient/<id> of every patient entity
//	entity   every entity reference as recorded (with its _history part
//	         when versioned; Search matches a versionless one to all versions)
//	subtype  code and system|code
//	action   C R U D E
//	outcome  0 4 8 12
func refsOf(ev *fm.AuditEvent) []Ref {
	var out []Ref
	add := func(k, v string) {
		if v != "" {
			out = append(out, Ref{Key: k, Value: v})
		}
	}
	for _, a := range ev.Agent {
		if a.Who != nil && a.Who.Identifier != nil && a.Who.Identifier.Value != nil {
			if a.Who.Identifier.System != nil && *a.Who.Identifier.System == SIDGateway {
				continue
			}
			add("agent", *a.Who.Identifier.Value)
		}
		if a.AltId != nil {
			add("agent", *a.AltId)
		}
	}
	for _, e := range ev.Entity {
		if e.What == nil || e.What.Reference == nil {
			continue
		}
		// One row per entity, versioned when it is: Search matches a
		// versionless reference to every version of it by range, so a
		// second, versionless row would only double the index writes.
		ref := *e.What.Reference
		add("entity", ref)
		if e.Type != nil && e.Type.Code != nil && *e.Type.Code == "1" && e.Role != nil && e.Role.Code != nil && *e.Role.Code == "1" {
			add("patient", ref)
		}
	}
	for _, s := range ev.Subtype {
		if s.Code != nil {
			add("subtype", *s.Code)
			if s.System != nil {
				add("subtype", *s.System+"|"+*s.Code)
			}
		}
	}
	if ev.Action != nil {
		add("action", ev.Action.Code())
	}
	if ev.Outcome != nil {
		add("outcome", ev.Outcome.Code())
	}
	slices.SortFunc(out, compareRef)
	return slices.Compact(out)
}

// historySep starts the version part of a reference; historyEnd is the
// least string greater than every ref+historySep+anything ('/' + 1).
const (
	historySep = "/_history/"
	historyEnd = "/_history0"
)

func compareRef(a, b Ref) int {
	if c := strings.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	return strings.Compare(a.Value, b.Value)
}
