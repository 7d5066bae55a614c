package masking

import (
	"errors"
	"fmt"

	"github.com/fhirwall/fhirwall/fhir"
)

// Sentinel kinds of rewrite failures. Rewrite returns them wrapped in a
// *fhir.Error with reason response-unmaskable (or compartment-violation for
// ErrRefused), so errors.Is works with both.
var (
	// ErrMalformed: the body is not one well-formed JSON value as RFC 8259
	// defines it (this includes a BOM, trailing data, control characters in
	// strings, lone surrogate escapes) or is not a JSON object.
	ErrMalformed = errors.New("malformed JSON")
	// ErrInvalidUTF8: a string holds bytes that are not UTF-8.
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
	// ErrDuplicateKey: an object repeats a member name, compared after
	// decoding escapes and ignoring case. Parsers disagree on which copy
	// wins (and some match names case-insensitively), so a masker that saw
	// one copy cannot vouch for the other.
	ErrDuplicateKey = errors.New("duplicate object key")
	// ErrTooDeep: nesting exceeds Options.MaxDepth.
	ErrTooDeep = errors.New("nesting too deep")
	// ErrTooLarge: one resource (or Bundle entry, or envelope member, or
	// NDJSON line) exceeds Options.MaxResourceBytes.
	ErrTooLarge = errors.New("resource larger than the configured cap")
	// ErrUnknownResource: an object in a resource position has no
	// resourceType, or one that is not an R4 resource type.
	ErrUnknownResource = errors.New("unknown or missing resourceType")
	// ErrRefused: a Check refused the response (or dropped the top-level
	// resource).
	ErrRefused = errors.New("resource refused by check")
)

// unmaskable wraps a sentinel with detail into the fhir.Error the caller
// turns into an OperationOutcome. The detail never contains body content.
func unmaskable(kind error, detail string, args ...any) error {
	return fhir.Wrap(fhir.ReasonResponseUnmaskable, kind, fmt.Sprintf(detail, args...))
}

// RuleError is one bad mask rule found by Compile: the profile it belongs to,
// its index in that profile's list, the path as written and why it is wrong.
// Compile joins every RuleError (errors.Join), in profile-name then index
// order, so a config loader can map each to a file and line.
type RuleError struct {
	Profile string
	Index   int
	Path    string
	Err     error
}

// Error names the profile, rule index and path, then the reason.
func (e *RuleError) Error() string {
	return fmt.Sprintf("mask profile %q rule %d (%q): %v", e.Profile, e.Index, e.Path, e.Err)
}

// Unwrap returns the reason.
func (e *RuleError) Unwrap() error { return e.Err }

// RuleErrors extracts every *RuleError from an error returned by Compile.
func RuleErrors(err error) []*RuleError {
	var out []*RuleError
	var walk func(error)
	walk = func(err error) {
		if re, ok := err.(*RuleError); ok {
			out = append(out, re)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}
