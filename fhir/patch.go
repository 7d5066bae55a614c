package fhir

import (
	"mime"
	"net/http"
	"strings"

	"github.com/tidwall/gjson"
)

// parsePatch reads a JSON Patch (RFC 6902) or FHIRPath Patch (Parameters)
// body and records every path it touches. A patch whose paths cannot be
// read is refused: policy cannot authorize a write it cannot see.
func parsePatch(resourceType string, header http.Header, body []byte) (*PatchInfo, error) {
	mt, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	p := &PatchInfo{}
	root := gjson.ParseBytes(body)
	if mt == "application/json-patch+json" {
		p.Kind = PatchJSON
		if !root.IsArray() {
			return nil, Errorf(ReasonRequestInvalid, "a JSON Patch must be an array of operations")
		}
		var err error
		root.ForEach(func(_, op gjson.Result) bool {
			kind := op.Get("op").String()
			switch kind {
			case "add", "remove", "replace", "move", "copy", "test":
			default:
				err = Errorf(ReasonRequestInvalid, "JSON Patch op %s is not known", safeToken(kind))
				return false
			}
			path := op.Get("path")
			if path.Type != gjson.String {
				err = Errorf(ReasonRequestInvalid, "a JSON Patch operation has no path")
				return false
			}
			p.add(path.Str, jsonPointerElement(path.Str))
			if kind == "move" || kind == "copy" {
				from := op.Get("from")
				if from.Type != gjson.String {
					err = Errorf(ReasonRequestInvalid, "JSON Patch %s needs from", kind)
					return false
				}
				p.add(from.Str, jsonPointerElement(from.Str))
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	p.Kind = PatchFHIRPath
	if root.Get("resourceType").String() != "Parameters" {
		return nil, Errorf(ReasonRequestInvalid, "a FHIR+JSON patch must be a FHIRPath Patch Parameters resource")
	}
	var err error
	root.Get("parameter").ForEach(func(_, param gjson.Result) bool {
		if param.Get("name").String() != "operation" {
			err = Errorf(ReasonRequestInvalid, "FHIRPath Patch parameters must be named operation")
			return false
		}
		var path, name string
		var hasPath bool
		param.Get("part").ForEach(func(_, part gjson.Result) bool {
			switch part.Get("name").String() {
			case "path":
				path, hasPath = part.Get("valueString").String(), true
			case "name":
				name = part.Get("valueString").String()
			}
			return true
		})
		if !hasPath || path == "" {
			err = Errorf(ReasonRequestInvalid, "a FHIRPath Patch operation has no path")
			return false
		}
		full := path
		if name != "" {
			full = path + "." + name
		}
		p.add(full, fhirPathElement(resourceType, full))
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(p.Paths) == 0 {
		return nil, Errorf(ReasonRequestInvalid, "the FHIRPath Patch has no operation")
	}
	return p, nil
}

func (p *PatchInfo) add(path, element string) {
	p.Paths = append(p.Paths, path)
	p.Elements = appendUnique(p.Elements, element)
}

// jsonPointerElement returns the top-level element a JSON Pointer names,
// or "" for the whole document.
func jsonPointerElement(ptr string) string {
	if ptr == "" || ptr == "/" || ptr[0] != '/' {
		return ""
	}
	seg, _, _ := strings.Cut(ptr[1:], "/")
	seg = strings.ReplaceAll(seg, "~1", "/")
	return strings.ReplaceAll(seg, "~0", "~")
}

// fhirPathElement returns the top-level element a simple FHIRPath starting
// at the resource type names ("Observation.subject.reference" -> "subject"),
// or "" (the whole resource) for anything it cannot read that simply, so
// that policy treats an unreadable path as touching everything.
func fhirPathElement(resourceType, path string) string {
	rest, ok := strings.CutPrefix(path, resourceType+".")
	if !ok {
		return ""
	}
	end := strings.IndexAny(rest, ".([ ")
	if end < 0 {
		end = len(rest)
	}
	el := rest[:end]
	for i := 0; i < len(el); i++ {
		c := el[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return ""
		}
	}
	return el
}
