package policy

// This file reads what arrives before any cryptography: the Authorization
// header and the token's JOSE header. Both are attacker-controlled, so both
// are read strictly and refused at the first doubt.

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/fhirwall/fhirwall/fhir"
)

// authnB64 is strict unpadded base64url (RFC 7515 §2): padding and
// non-zero trailing bits are refused, so one token has one encoding.
var authnB64 = base64.RawURLEncoding.Strict()

// authnBearer extracts the token from exactly one "Authorization: Bearer
// <token>" header (RFC 6750 §2.1). The scheme is case-insensitive; one
// space separates it from the token; the token is three base64url
// segments. Anything else is refused, the size bound first so an oversized
// header costs nothing more than its length.
func authnBearer(h http.Header, maxToken int) (string, error) {
	vals := h.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", authnRefuse(fhir.ReasonTokenMissing, "no Authorization header", nil)
	case len(vals) > 1:
		// Two headers may be read differently by two components (first
		// wins here, last wins there): refuse rather than choose.
		return "", authnRefuse(fhir.ReasonTokenMalformed, "more than one Authorization header", nil)
	}
	v := vals[0]
	const scheme = "Bearer "
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return "", authnRefuse(fhir.ReasonTokenMalformed, "the Authorization header is not of the form 'Bearer <token>'", nil)
	}
	tok := v[len(scheme):]
	if len(tok) > maxToken {
		return "", authnRefuse(fhir.ReasonTokenMalformed, "the bearer token is larger than allowed", nil)
	}
	if tok == "" {
		return "", authnRefuse(fhir.ReasonTokenMalformed, "the bearer token is empty", nil)
	}
	dots := 0
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			dots++
		default:
			return "", authnRefuse(fhir.ReasonTokenMalformed, "the bearer token is not a compact JWS (unexpected character)", nil)
		}
	}
	if dots != 2 {
		// Five segments would be an encrypted JWT (JWE), which is not
		// accepted; anything else is not a JWT.
		return "", authnRefuse(fhir.ReasonTokenMalformed, "the bearer token is not a compact JWS (want three segments)", nil)
	}
	return tok, nil
}

// authnJOSE is the part of a JOSE header that verification uses.
type authnJOSE struct {
	alg    string
	kid    string
	hasKID bool
	typ    string
	hasTyp bool
}

// authnParseJOSE decodes and checks the protected header. It refuses:
//   - jku, x5u: they point at keys chosen by the token's author; following
//     them would let anyone who can host a file sign tokens (and makes the
//     gateway fetch attacker URLs: SSRF).
//   - jwk, x5c: they embed the verification key in the token itself, so a
//     signature checked against them proves nothing. Keys come only from
//     the issuer's configured JWKS, so these headers are never needed, and
//     a token that carries them was built by something we do not expect.
//   - crit: fhirwall understands no JWS extension, so every critical one
//     is unknown and RFC 7515 §4.1.11 says the token must be refused.
//   - b64: RFC 7797 unencoded payloads are not JWTs.
//   - duplicate member names, which parsers resolve differently.
func authnParseJOSE(seg string) (authnJOSE, error) {
	var h authnJOSE
	raw, err := authnB64.DecodeString(seg)
	if err != nil {
		return h, authnRefuse(fhir.ReasonTokenMalformed, "the token header is not base64url", err)
	}
	dec := jsontext.NewDecoder(bytes.NewReader(raw))
	if err := authnExpectObject(dec); err != nil {
		return h, authnRefuse(fhir.ReasonTokenMalformed, "the token header is not a JSON object", err)
	}
	hasAlg := false
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return h, authnRefuse(fhir.ReasonTokenMalformed, "the token header is not valid JSON", err)
		}
		switch n := name.String(); n {
		case "alg", "kid", "typ":
			v, err := dec.ReadToken()
			if err != nil || v.Kind() != '"' {
				return h, authnRefuse(fhir.ReasonTokenMalformed, "the token header member "+n+" is not a string", err)
			}
			switch n {
			case "alg":
				h.alg, hasAlg = v.String(), true
			case "kid":
				h.kid, h.hasKID = v.String(), true
			case "typ":
				h.typ, h.hasTyp = v.String(), true
			}
		case "jku", "x5u", "jwk", "x5c", "crit", "b64":
			return h, authnRefuse(fhir.ReasonTokenInvalid, "the token header carries "+n+", which is not accepted", nil)
		default:
			if err := dec.SkipValue(); err != nil {
				return h, authnRefuse(fhir.ReasonTokenMalformed, "the token header is not valid JSON", err)
			}
		}
	}
	if err := authnExpectEnd(dec); err != nil {
		return h, authnRefuse(fhir.ReasonTokenMalformed, "the token header is not valid JSON", err)
	}
	if !hasAlg {
		return h, authnRefuse(fhir.ReasonTokenMalformed, "the token header has no alg", nil)
	}
	return h, nil
}

var (
	errAuthnNotObject = errors.New("not a JSON object")
	errAuthnTrailing  = errors.New("data after the JSON object")
)

// authnExpectObject reads the opening brace of a top-level object.
func authnExpectObject(dec *jsontext.Decoder) error {
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	if tok.Kind() != '{' {
		return errAuthnNotObject
	}
	return nil
}

// authnExpectEnd reads the closing brace and requires nothing after it.
func authnExpectEnd(dec *jsontext.Decoder) error {
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		if err == nil {
			err = errAuthnTrailing
		}
		return err
	}
	return nil
}
