package policy

// This file is the order of checks for a token that is not in the cache.
// The payload is read unverified only to learn "iss", which picks the keys
// and rules; nothing else in it is believed until the signature verifies
// under a key of that issuer and an algorithm of its allow-list.

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/fhirwall/fhirwall/fhir"
)

func (a *Authenticator) verify(ctx context.Context, token string, now time.Time) (*Principal, error) {
	// authnBearer guarantees exactly two dots.
	first := strings.IndexByte(token, '.')
	last := strings.LastIndexByte(token, '.')
	hdrSeg, paySeg := token[:first], token[first+1:last]

	hdr, err := authnParseJOSE(hdrSeg)
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(hdr.alg, "none") {
		return nil, authnRefuse(fhir.ReasonTokenInvalid, "unsigned tokens (alg none) are not accepted", nil)
	}
	claims, err := authnParseClaims(paySeg, a.agentClaims)
	if err != nil {
		return nil, err
	}
	if !claims.hasIss || claims.iss == "" {
		return nil, authnRefuse(fhir.ReasonIssuerUnknown, "the token has no issuer", nil)
	}
	iss, ok := a.issuers[claims.iss]
	if !ok {
		return nil, authnRefuse(fhir.ReasonIssuerUnknown, "the token's issuer is not trusted", nil)
	}

	// The algorithm must be on the issuer's allow-list; the header only
	// chooses within it, and the key must fit it too (see jwks_keys.go).
	alg, ok := authnSupportedAlgs[hdr.alg]
	if !ok || !slices.Contains(iss.algs, alg) {
		return nil, authnRefuse(fhir.ReasonTokenInvalid, "the token's algorithm is not allowed for its issuer", nil)
	}
	if err := iss.checkType(hdr); err != nil {
		return nil, err
	}
	if err := iss.checkSignature(ctx, token, hdr, alg); err != nil {
		return nil, err
	}
	// From here on the claims are the issuer's.
	return iss.principal(claims, now)
}

func (iss *authnIssuer) checkType(hdr authnJOSE) error {
	if !hdr.hasTyp {
		if iss.allowNoTyp {
			return nil
		}
		return authnRefuse(fhir.ReasonTokenInvalid, "the token has no typ header; an access token (at+jwt) is required", nil)
	}
	if !slices.Contains(iss.types, authnNormType(hdr.typ)) {
		return authnRefuse(fhir.ReasonTokenInvalid, "the token's typ is not accepted for its issuer (is it an ID token?)", nil)
	}
	return nil
}

func (iss *authnIssuer) checkSignature(ctx context.Context, token string, hdr authnJOSE, alg jwa.SignatureAlgorithm) error {
	keys, err := iss.keys.keysFor(ctx, hdr.kid, hdr.hasKID, alg)
	if err != nil {
		return authnRefuse(fhir.ReasonTokenInvalid, "the issuer's signing keys are not available", err)
	}
	if len(keys) == 0 {
		return authnRefuse(fhir.ReasonTokenInvalid, "no key of the issuer matches the token's key id and algorithm", nil)
	}
	// jws.Verify parses the header a second time and re-checks crit and b64
	// on its own. jws.VerifyCompactFast would save ~60 allocations, but is
	// marked experimental, and the signature itself dominates the cost.
	buf := []byte(token)
	var lastErr error
	for _, k := range keys {
		_, err := jws.Verify(buf, jws.WithKey(alg, k.raw), jws.WithAlgorithmMatch(true))
		if err == nil {
			return nil
		}
		lastErr = err
	}
	return authnRefuse(fhir.ReasonTokenInvalid, "the token's signature does not verify", lastErr)
}

// principal checks the verified claims and builds the Principal.
func (iss *authnIssuer) principal(c *authnClaims, now time.Time) (*Principal, error) {
	if !c.hasExp {
		return nil, authnRefuse(fhir.ReasonTokenInvalid, "the token has no expiry (exp)", nil)
	}
	if !now.Before(c.exp.Add(iss.skew)) {
		return nil, authnRefuse(fhir.ReasonTokenExpired, "the token has expired", nil)
	}
	if c.hasNbf && now.Add(iss.skew).Before(c.nbf) {
		return nil, authnRefuse(fhir.ReasonTokenNotYetValid, "the token is not valid yet (nbf)", nil)
	}
	if c.hasIat && now.Add(iss.skew).Before(c.iat) {
		return nil, authnRefuse(fhir.ReasonTokenNotYetValid, "the token was issued in the future (iat)", nil)
	}
	if !c.hasAud {
		return nil, authnRefuse(fhir.ReasonAudienceMismatch, "the token has no audience (aud)", nil)
	}
	if !slices.ContainsFunc(c.aud, func(a string) bool { return slices.Contains(iss.audiences, a) }) {
		return nil, authnRefuse(fhir.ReasonAudienceMismatch, "the token's audience does not name this gateway", nil)
	}
	agent, err := iss.agentID(c)
	if err != nil {
		return nil, err
	}
	p := &Principal{
		AgentID:      agent,
		Issuer:       c.iss,
		Subject:      c.sub,
		ClientID:     c.clientID,
		JTI:          c.jti,
		Patient:      c.patient,
		PurposeOfUse: c.purposeOfUse,
		ExpiresAt:    c.exp,
	}
	if c.hasIat {
		p.IssuedAt = c.iat
	}
	switch {
	case c.hasScope:
		p.Scopes = strings.Fields(c.scope)
	case c.hasScp:
		p.Scopes = c.scp
	}
	return p, nil
}

// agentID reads the configured agent claim. Only an absent "sub" falls back
// to "client_id"; a present but empty or non-string claim is refused, never
// skipped.
func (iss *authnIssuer) agentID(c *authnClaims) (string, error) {
	var id string
	switch {
	case iss.agentClaim == "" && c.hasSub:
		id = c.sub
	case iss.agentClaim == "":
		if !c.hasClientID {
			return "", authnRefuse(fhir.ReasonTokenInvalid, "the token names no agent (neither sub nor client_id)", nil)
		}
		id = c.clientID
	case iss.agentClaim == "sub":
		if !c.hasSub {
			return "", authnRefuse(fhir.ReasonTokenInvalid, "the token has no sub claim naming the agent", nil)
		}
		id = c.sub
	case iss.agentClaim == "client_id":
		if !c.hasClientID {
			return "", authnRefuse(fhir.ReasonTokenInvalid, "the token has no client_id claim naming the agent", nil)
		}
		id = c.clientID
	default:
		cc, ok := c.customClaim(iss.agentClaim)
		if !ok || !cc.isString {
			return "", authnRefuse(fhir.ReasonTokenInvalid, "the token's agent claim is missing or not a string", nil)
		}
		id = cc.value
	}
	if strings.TrimSpace(id) == "" {
		return "", authnRefuse(fhir.ReasonTokenInvalid, "the token's agent claim is empty", nil)
	}
	return id, nil
}
