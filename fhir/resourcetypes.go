package fhir

import (
	_ "embed"
	"slices"
	"strings"
)

// resourceTypesData is the R4 resource type list, kept as data so that a
// reviewer can diff it against the specification.
//
//go:embed data/resource_types.txt
var resourceTypesData string

var resourceTypes = parseResourceTypes(resourceTypesData)

func parseResourceTypes(data string) map[string]struct{} {
	m := make(map[string]struct{}, 160)
	for line := range strings.Lines(data) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		m[line] = struct{}{}
	}
	return m
}

// IsResourceType reports whether s is exactly the name of an R4 resource
// type. Case matters: "patient" and "PATIENT" are not resource types, so a
// path that an upstream might match case-insensitively is refused instead of
// being authorized under another name.
func IsResourceType(s string) bool {
	_, ok := resourceTypes[s]
	return ok
}

// ResourceTypes returns every R4 resource type name, sorted. The caller owns
// the returned slice.
func ResourceTypes() []string {
	out := make([]string, 0, len(resourceTypes))
	for t := range resourceTypes {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
