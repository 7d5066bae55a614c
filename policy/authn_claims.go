package policy

// This file reads a token's claims. It runs before the signature is checked
// (the issuer, which picks the keys, is itself a claim), so it trusts
// nothing it reads and only the verify step acts on the result. Duplicate
// and case-variant claim names are refused: two parsers that resolve
// {"sub":"a","sub":"b"} or {"sub":"a","Sub":"b"} differently would see two
// different agents in one signed token.

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/fhirwall/fhirwall/fhir"
)

// authnMaxNumericDate is 9999-12-31T23:59:59Z; later dates are nonsense.
const authnMaxNumericDate = 253402300799

// authnKnownClaims are the claims fhirwall reads. A top-level name that
// equals one of them ignoring case, without being it, is refused.
var authnKnownClaims = []string{
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id",
	"scope", "scp", "patient", "purpose_of_use",
}

// authnClaims is what the payload says, unverified.
type authnClaims struct {
	iss, sub, clientID, jti, patient, scope string

	hasIss, hasSub, hasClientID, hasScope, hasScp bool
	hasAud, hasExp, hasNbf, hasIat                bool

	aud, scp, purposeOfUse []string
	exp, nbf, iat          time.Time

	custom []authnCustomClaim
}

// authnCustomClaim is a configured agent claim other than sub/client_id.
type authnCustomClaim struct {
	name, value string
	isString    bool
}

func (c *authnClaims) customClaim(name string) (authnCustomClaim, bool) {
	for _, cc := range c.custom {
		if cc.name == name {
			return cc, true
		}
	}
	return authnCustomClaim{}, false
}

// authnParseClaims decodes the payload segment. extra names the custom
// agent claims to capture.
func authnParseClaims(seg string, extra []string) (*authnClaims, error) {
	raw, err := authnB64.DecodeString(seg)
	if err != nil {
		return nil, authnRefuse(fhir.ReasonTokenMalformed, "the token payload is not base64url", err)
	}
	// The decoder refuses duplicate names at every depth and invalid UTF-8
	// by default; the case-variant check below covers top-level names.
	dec := jsontext.NewDecoder(bytes.NewReader(raw))
	if err := authnExpectObject(dec); err != nil {
		return nil, authnRefuse(fhir.ReasonTokenMalformed, "the token payload is not a JSON object", err)
	}
	c := &authnClaims{}
	var seen authnNameSet
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, authnRefuse(fhir.ReasonTokenMalformed, "the token payload is not valid JSON", err)
		}
		name := tok.String()
		if err := authnCheckName(name, &seen, extra); err != nil {
			return nil, err
		}
		if err := c.read(dec, name, extra); err != nil {
			return nil, authnRefuse(fhir.ReasonTokenMalformed, authnSafeName(name)+" is malformed", err)
		}
	}
	if err := authnExpectEnd(dec); err != nil {
		return nil, authnRefuse(fhir.ReasonTokenMalformed, "the token payload is not valid JSON", err)
	}
	if c.hasScope && c.hasScp {
		return nil, authnRefuse(fhir.ReasonTokenMalformed, "the token carries both scope and scp", nil)
	}
	return c, nil
}

// authnCheckName refuses a name that repeats an earlier one ignoring case,
// or that is a case variant of a claim fhirwall reads, and records it.
func authnCheckName(name string, seen *authnNameSet, extra []string) error {
	if !seen.add(name) {
		return authnRefuse(fhir.ReasonTokenMalformed, "the token payload repeats a claim name (ignoring case)", nil)
	}
	for _, lists := range [2][]string{authnKnownClaims, extra} {
		for _, k := range lists {
			if k != name && strings.EqualFold(k, name) {
				return authnRefuse(fhir.ReasonTokenMalformed, "the token payload has a case variant of the claim "+k, nil)
			}
		}
	}
	return nil
}

// authnNameSet detects names equal ignoring case. Tokens have a dozen
// claims, compared pairwise without allocating; past authnNameSetSmall
// names it switches to a map, so a payload of thousands of tiny claims
// costs linear time, not quadratic.
type authnNameSet struct {
	small [authnNameSetSmall]string
	n     int
	big   map[string]struct{}
}

const authnNameSetSmall = 32

// add records name and reports whether it was new (ignoring case).
func (s *authnNameSet) add(name string) bool {
	if s.big == nil {
		for _, prev := range s.small[:s.n] {
			if strings.EqualFold(prev, name) {
				return false
			}
		}
		if s.n < len(s.small) {
			s.small[s.n] = name
			s.n++
			return true
		}
		s.big = make(map[string]struct{}, 2*len(s.small))
		for _, prev := range s.small[:s.n] {
			s.big[authnFold(prev)] = struct{}{}
		}
	}
	k := authnFold(name)
	if _, dup := s.big[k]; dup {
		return false
	}
	s.big[k] = struct{}{}
	return true
}

// authnFold maps names that strings.EqualFold equates to one key (for the
// simple case foldings that matter here; over-matching only refuses more).
func authnFold(s string) string { return strings.ToLower(strings.ToUpper(s)) }

// authnSafeName names a claim in an error detail. Names come from the
// token, and details carry none of its content beyond our own vocabulary.
func authnSafeName(name string) string {
	for _, k := range authnKnownClaims {
		if k == name {
			return "the claim " + name
		}
	}
	return "a claim"
}

var errAuthnType = errors.New("unexpected JSON type")

func (c *authnClaims) read(dec *jsontext.Decoder, name string, extra []string) (err error) {
	switch name {
	case "iss":
		c.iss, err = authnString(dec)
		c.hasIss = true
	case "sub":
		c.sub, err = authnString(dec)
		c.hasSub = true
	case "client_id":
		c.clientID, err = authnString(dec)
		c.hasClientID = true
	case "jti":
		c.jti, err = authnString(dec)
	case "patient":
		c.patient, err = authnString(dec)
	case "scope":
		c.scope, err = authnString(dec)
		c.hasScope = true
	case "scp":
		c.scp, err = authnStrings(dec)
		c.hasScp = true
	case "aud":
		c.aud, err = authnStrings(dec)
		c.hasAud = true
	case "purpose_of_use":
		c.purposeOfUse, err = authnStrings(dec)
	case "exp":
		c.exp, err = authnNumericDate(dec)
		c.hasExp = true
	case "nbf":
		c.nbf, err = authnNumericDate(dec)
		c.hasNbf = true
	case "iat":
		c.iat, err = authnNumericDate(dec)
		c.hasIat = true
	default:
		for _, e := range extra {
			if e == name {
				return c.readCustom(dec, name)
			}
		}
		return dec.SkipValue()
	}
	return err
}

func (c *authnClaims) readCustom(dec *jsontext.Decoder, name string) error {
	if dec.PeekKind() != '"' {
		c.custom = append(c.custom, authnCustomClaim{name: name})
		return dec.SkipValue()
	}
	v, err := authnString(dec)
	c.custom = append(c.custom, authnCustomClaim{name: name, value: v, isString: true})
	return err
}

func authnString(dec *jsontext.Decoder) (string, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return "", err
	}
	if tok.Kind() != '"' {
		return "", errAuthnType
	}
	return tok.String(), nil
}

// authnStrings reads a string or an array of strings (RFC 7519 "aud").
func authnStrings(dec *jsontext.Decoder) ([]string, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case '"':
		return []string{tok.String()}, nil
	case '[':
	default:
		return nil, errAuthnType
	}
	var out []string
	for dec.PeekKind() != ']' {
		s, err := authnString(dec)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	_, err = dec.ReadToken()
	return out, err
}

// authnNumericDate reads an RFC 7519 NumericDate: seconds since the epoch,
// possibly fractional, within a sane range.
func authnNumericDate(dec *jsontext.Decoder) (time.Time, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return time.Time{}, err
	}
	if tok.Kind() != '0' {
		return time.Time{}, errAuthnType
	}
	f, err := tok.Float()
	if err != nil {
		return time.Time{}, err
	}
	if math.IsNaN(f) || f < 0 || f > authnMaxNumericDate {
		return time.Time{}, errors.New("NumericDate out of range")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}
