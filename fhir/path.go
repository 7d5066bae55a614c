package fhir

import "strings"

// splitPath checks a raw (still percent-encoded) path below the FHIR base
// and returns its segments. It refuses, rather than normalises, everything
// an upstream could read differently from fhirwall: any percent-encoding
// (%2F, %2E, double encoding: no valid FHIR path segment needs one), dot
// segments, ";" path parameters (and so "..;"), empty segments, backslashes,
// control characters and any byte outside the FHIR id, type, "_" keyword and
// "$" operation alphabet. "" and "/" are the base itself (no segments).
func splitPath(raw string) ([]string, error) {
	if raw == "" || raw == "/" {
		return nil, nil
	}
	if raw[0] != '/' {
		return nil, Errorf(ReasonPathInvalid, "the path must start with /")
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !pathByteOK(c) {
			return nil, pathByteError(c)
		}
	}
	segs := strings.Split(raw[1:], "/")
	for _, s := range segs {
		switch s {
		case "":
			return nil, Errorf(ReasonPathInvalid, "the path has an empty segment")
		case ".", "..":
			return nil, Errorf(ReasonPathInvalid, "the path has a dot segment")
		}
	}
	return segs, nil
}

// pathByteOK reports whether c may appear in a FHIR path: the id alphabet
// [A-Za-z0-9-.], "_" for keywords (_history, _search), "$" for operations,
// "*" for "all types" in compartment searches, and "/".
func pathByteOK(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case c == '-', c == '.', c == '_', c == '$', c == '*', c == '/':
		return true
	}
	return false
}

func pathByteError(c byte) *Error {
	switch {
	case c == '%':
		return Errorf(ReasonPathInvalid, "percent-encoding is not allowed in the path")
	case c == ';':
		return Errorf(ReasonPathInvalid, "path parameters (;) are not allowed")
	case c == '\\':
		return Errorf(ReasonPathInvalid, "backslashes are not allowed in the path")
	case c < 0x20 || c == 0x7f:
		return Errorf(ReasonPathInvalid, "control characters are not allowed in the path")
	}
	return Errorf(ReasonPathInvalid, "the path contains a character FHIR paths do not use (0x%02x)", c)
}

// validID reports whether s matches the R4 id type: [A-Za-z0-9\-\.]{1,64}.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// ValidID reports whether s is a valid R4 resource id
// ([A-Za-z0-9\-\.]{1,64}).
func ValidID(s string) bool { return validID(s) }

// validOperationName reports whether s (without "$") is a plausible
// operation code: a letter, then letters, digits and "-".
func validOperationName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// safeToken quotes s for an error detail when it looks like a name (a
// type, parameter, method or media type) and withholds it otherwise: details
// reach clients and logs, and raw request text may carry PHI.
func safeToken(s string) string {
	if s == "" || len(s) > 64 {
		return "(withheld)"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._$:/+*", c) >= 0) {
			return "(withheld)"
		}
	}
	return `"` + s + `"`
}
