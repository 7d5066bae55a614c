package fhirsample

import (
	"maps"
	"net/http"
	"slices"
)

// capabilities answers GET /metadata with a CapabilityStatement generated
// from the search parameter table, so it states exactly what is served.
func (v view) capabilities() response {
	var resources []any
	for _, typ := range resourceTypes {
		var params []any
		for _, name := range slices.Sorted(maps.Keys(commonParams)) {
			params = append(params, map[string]any{"name": name, "type": string(commonParams[name].typ)})
		}
		for _, name := range slices.Sorted(maps.Keys(searchParams[typ])) {
			params = append(params, map[string]any{"name": name, "type": string(searchParams[typ][name].typ)})
		}
		var includes, revincludes []string
		for _, name := range slices.Sorted(maps.Keys(searchParams[typ])) {
			if searchParams[typ][name].typ == ptReference {
				includes = append(includes, typ+":"+name)
			}
		}
		for _, src := range resourceTypes {
			for _, name := range slices.Sorted(maps.Keys(searchParams[src])) {
				p := searchParams[src][name]
				if p.typ == ptReference && (p.target == "" || p.target == typ) {
					revincludes = append(revincludes, src+":"+name)
				}
			}
		}
		r := map[string]any{
			"type": typ,
			"interaction": []any{
				map[string]any{"code": "read"}, map[string]any{"code": "vread"},
				map[string]any{"code": "update"}, map[string]any{"code": "delete"},
				map[string]any{"code": "history-instance"}, map[string]any{"code": "create"},
				map[string]any{"code": "search-type"},
			},
			"versioning":        "versioned-update",
			"readHistory":       true,
			"updateCreate":      true,
			"conditionalCreate": false,
			"conditionalUpdate": false,
			"conditionalDelete": "not-supported",
			"searchInclude":     includes,
			"searchRevInclude":  revincludes,
			"searchParam":       params,
		}
		if typ == "Patient" {
			r["operation"] = []any{map[string]any{
				"name":       "everything",
				"definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
			}}
		}
		resources = append(resources, r)
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         "2026-01-01",
		"publisher":    "fhirwall",
		"kind":         "instance",
		"software":     map[string]any{"name": "fhirwall sample FHIR server (synthetic data)"},
		"implementation": map[string]any{
			"description": "In-memory sample server for fhirwall demos and tests",
			"url":         v.base,
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"json", "application/fhir+json"},
		"rest": []any{map[string]any{
			"mode":          "server",
			"documentation": "Search ignores unknown parameters unless the request sends Prefer: handling=strict.",
			"resource":      resources,
			"interaction":   []any{map[string]any{"code": "batch"}, map[string]any{"code": "transaction"}},
		}},
	}
	body, err := encodeResource(cs)
	if err != nil {
		return fail(http.StatusInternalServerError, "exception", "the CapabilityStatement cannot be encoded").response()
	}
	return response{status: http.StatusOK, body: body}
}
