package policy

// This file shapes authentication refusals: one constructor for the
// fhir.Error every check returns, and the RFC 6750 WWW-Authenticate value
// that goes with the 401.

import (
	"errors"
	"strings"

	"github.com/fhirwall/fhirwall/fhir"
)

// authnRefuse builds a refusal. detail is shown to the client and must be
// our own words, never token content; cause is kept for logs.
func authnRefuse(reason fhir.Reason, detail string, cause error) *fhir.Error {
	return fhir.Wrap(reason, cause, detail)
}

// WWWAuthenticate returns the WWW-Authenticate header value for an
// authentication refusal (RFC 6750 §3). A request with no token gets a bare
// "Bearer" challenge, as §3.1 asks; every other refusal gets
// `Bearer error="invalid_token", error_description="..."` with the
// refusal's detail, reduced to the characters §3 allows (no quotes, no
// backslashes, no control or non-ASCII characters), so nothing a client
// sends can break out of the quoted string.
func WWWAuthenticate(err error) string {
	var fe *fhir.Error
	if err == nil || !errors.As(err, &fe) || fe.Reason == fhir.ReasonTokenMissing {
		return "Bearer"
	}
	desc := fe.Detail
	if desc == "" {
		desc = fe.Reason.Display()
	}
	return `Bearer error="invalid_token", error_description="` + authnDescription(desc) + `"`
}

// authnDescription keeps %x20-21 / %x23-5B / %x5D-7E (RFC 6750 §3) and
// turns a quote or backslash into an apostrophe.
func authnDescription(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\'')
		case c >= 0x20 && c <= 0x7e:
			b.WriteByte(c)
		}
	}
	return b.String()
}
