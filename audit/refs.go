package audit

import (
	"crypto/sha256"
	"encoding/binary"
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
//	         when versioned; the index keys it without, see indexValue)
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

// historySep starts the version part of a reference.
const historySep = "/_history/"

func compareRef(a, b Ref) int {
	if c := strings.Compare(a.Key, b.Key); c != 0 {
		return c
	}
	return strings.Compare(a.Value, b.Value)
}

// indexValue is the form of a search value the index keys: an entity
// without its version (a versionless search matches every version; a
// versioned one is made exact by matchRefs), anything else as is.
func indexValue(key, v string) string {
	if key == "entity" {
		if base, _, ok := strings.Cut(v, historySep); ok {
			return base
		}
	}
	return v
}

// indexKey is the 63-bit search index key of one value: the first bytes
// of SHA-256 over key NUL value. A fixed-width integer keeps the index one
// compact B-tree; SHA-256 keeps anyone from choosing values that collide,
// and Search checks every candidate's body anyway.
func indexKey(key, v string) int64 {
	var buf [160]byte // on the stack for the values an event has
	b := append(append(append(buf[:0], key...), 0), v...)
	sum := sha256.Sum256(b)
	return int64(binary.BigEndian.Uint64(sum[:]) >> 1)
}

// indexKeys are the distinct index keys of an event's refs.
func indexKeys(refs []Ref) []int64 {
	out := make([]int64, 0, len(refs))
	for _, r := range refs {
		out = append(out, indexKey(r.Key, indexValue(r.Key, r.Value)))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// matchRefs reports whether refs (an event's, from refsOf) have, for every
// group, one of its values; a versionless entity matches every version.
func matchRefs(refs []Ref, groups []RefGroup) bool {
	for _, g := range groups {
		if len(g.Values) == 0 {
			continue
		}
		found := false
		for _, r := range refs {
			if r.Key != g.Key {
				continue
			}
			for _, v := range g.Values {
				if r.Value == v || (g.Key == "entity" && !strings.Contains(v, historySep) && strings.HasPrefix(r.Value, v+historySep)) {
					found = true
					break
				}
			}
			if found {
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// recordMatches is matchRefs over a stored event's body.
func recordMatches(r *Record, groups []RefGroup) (bool, error) {
	if len(groups) == 0 {
		return true, nil
	}
	ev, err := fm.UnmarshalAuditEvent(r.Body)
	if err != nil {
		return false, err
	}
	return matchRefs(refsOf(&ev), groups), nil
}
