package policy

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// TestAuthenticate drives every failure class through Authenticate with
// real tokens signed by real keys, verified against an httptest JWKS.
func TestAuthenticate(t *testing.T) {
	s := newAuthnTestSetup(t)
	k := s.keys
	now := s.clock.Now()
	ecHdr := func() map[string]any { return map[string]any{"alg": "ES256", "kid": "ec-1", "typ": "at+jwt"} }
	rsaHdr := func() map[string]any { return map[string]any{"alg": "RS256", "kid": "rsa-1", "typ": "at+jwt"} }
	claims := func() map[string]any { return authnDefaultClaims(now) }
	with := func(m map[string]any, kv ...any) map[string]any {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	ec := func(h, c map[string]any) string { return authnSign(t, h, c, k.ec1) }
	good := ec(ecHdr(), claims())
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: authnPKIX(t, &k.rsa1.PublicKey)})

	// A JWKS an attacker hosts, to prove jku is never followed.
	var evilHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		evilHits.Add(1)
		_, _ = w.Write(authnJWKSBody(t, []authnJWK{{kid: "ec-1", priv: k.evil}}))
	}))
	defer evil.Close()
	evilJWK := authnPublicJWK(t, authnJWK{kid: "ec-1", priv: k.evil})

	tests := []struct {
		name   string
		header http.Header
		want   fhir.Reason // "" means accepted
		why    string      // a refusal's detail contains this: proves which check refused
		agent  string
	}{
		{name: "valid ES256", header: authnBearerHeader(good), agent: authnTestAgent},
		{name: "valid RS256", header: authnBearerHeader(authnSign(t, rsaHdr(), claims(), k.rsa1)), agent: authnTestAgent},
		{name: "scheme is case-insensitive", header: http.Header{"Authorization": {"bearer " + good}}, agent: authnTestAgent},
		{name: "kid-less ES256 tries EC keys only", header: authnBearerHeader(ec(with(ecHdr(), "kid", nil), claims())), agent: authnTestAgent},
		{name: "kid-less RS256", header: authnBearerHeader(authnSign(t, with(rsaHdr(), "kid", nil), claims(), k.rsa1)), agent: authnTestAgent},

		// Algorithms.
		{name: "alg none", header: authnBearerHeader(authnSignRaw(t, `{"alg":"none","typ":"at+jwt"}`, authnJSON(t, claims()), "none", nil)), want: fhir.ReasonTokenInvalid, why: "unsigned tokens (alg none) are not accepted"},
		{name: "alg NONE", header: authnBearerHeader(authnSignRaw(t, `{"alg":"NONE","kid":"ec-1","typ":"at+jwt"}`, authnJSON(t, claims()), "none", nil)), want: fhir.ReasonTokenInvalid, why: "unsigned tokens (alg none) are not accepted"},
		{name: "HS256 keyed with the RSA public key PEM", header: authnBearerHeader(authnSign(t, with(rsaHdr(), "alg", "HS256"), claims(), rsaPubPEM)), want: fhir.ReasonTokenInvalid, why: "the token's algorithm is not allowed for its issuer"},
		{name: "HS256 keyed with the RSA modulus", header: authnBearerHeader(authnSign(t, with(rsaHdr(), "alg", "HS256"), claims(), k.rsa1.N.Bytes())), want: fhir.ReasonTokenInvalid, why: "the token's algorithm is not allowed for its issuer"},
		{name: "PS256 not in allow-list", header: authnBearerHeader(authnSign(t, with(rsaHdr(), "alg", "PS256", "kid", "rsa-1"), claims(), k.rsa1)), want: fhir.ReasonTokenInvalid, why: "the token's algorithm is not allowed for its issuer"},
		{name: "RS512 not in allow-list", header: authnBearerHeader(authnSign(t, with(rsaHdr(), "alg", "RS512"), claims(), k.rsa1)), want: fhir.ReasonTokenInvalid, why: "the token's algorithm is not allowed for its issuer"},
		{name: "unknown alg name", header: authnBearerHeader(authnSignRaw(t, `{"alg":"ES256K","kid":"ec-1","typ":"at+jwt"}`, authnJSON(t, claims()), "none", nil)), want: fhir.ReasonTokenInvalid, why: "the token's algorithm is not allowed for its issuer"},
		{name: "RS256 header on the EC key", header: authnBearerHeader(authnSign(t, with(rsaHdr(), "kid", "ec-1"), claims(), k.rsa1)), want: fhir.ReasonTokenInvalid, why: "no key of the issuer matches the token's key id and algorith"},
		{name: "ES256 header on the RSA key", header: authnBearerHeader(ec(with(ecHdr(), "kid", "rsa-1"), claims())), want: fhir.ReasonTokenInvalid, why: "no key of the issuer matches the token's key id and algorith"},
		{name: "weak RSA key in JWKS is never used", header: authnBearerHeader(authnSign(t, with(rsaHdr(), "kid", "rsa-weak"), claims(), k.rsaWeak)), want: fhir.ReasonTokenInvalid, why: "no key of the issuer matches the token's key id and algorith"},
		{name: "signed by a key the issuer does not publish", header: authnBearerHeader(authnSign(t, ecHdr(), claims(), k.evil)), want: fhir.ReasonTokenInvalid, why: "the token's signature does not verify"},
		{name: "payload swapped after signing", header: authnBearerHeader(authnSwapPayload(t, good, with(claims(), "sub", "agent-admin"))), want: fhir.ReasonTokenInvalid, why: "the token's signature does not verify"},

		// Key ids.
		{name: "kid path traversal", header: authnBearerHeader(ec(with(ecHdr(), "kid", "../../../../etc/passwd"), claims())), want: fhir.ReasonTokenInvalid, why: "no key of the issuer matches the token's key id and algorith"},
		{name: "kid SQL injection", header: authnBearerHeader(ec(with(ecHdr(), "kid", "x' OR '1'='1"), claims())), want: fhir.ReasonTokenInvalid, why: "no key of the issuer matches the token's key id and algorith"},
		{name: "unknown kid", header: authnBearerHeader(ec(with(ecHdr(), "kid", "nope"), claims())), want: fhir.ReasonTokenInvalid, why: "no key of the issuer matches the token's key id and algorith"},
		{name: "kid not a string", header: authnBearerHeader(ec(with(ecHdr(), "kid", 7), claims())), want: fhir.ReasonTokenMalformed, why: "the token header member kid is not a string"},

		// Headers that point at or embed keys, and crit.
		{name: "jku to attacker JWKS", header: authnBearerHeader(authnSign(t, with(ecHdr(), "jku", evil.URL), claims(), k.evil)), want: fhir.ReasonTokenInvalid, why: "the token header carries jku, which is not accepted"},
		{name: "embedded jwk", header: authnBearerHeader(authnSign(t, with(ecHdr(), "jwk", evilJWK), claims(), k.evil)), want: fhir.ReasonTokenInvalid, why: "the token header carries jwk, which is not accepted"},
		{name: "embedded jwk, signed by the real key", header: authnBearerHeader(ec(with(ecHdr(), "jwk", evilJWK), claims())), want: fhir.ReasonTokenInvalid, why: "the token header carries jwk, which is not accepted"},
		{name: "x5u", header: authnBearerHeader(authnSign(t, with(ecHdr(), "x5u", evil.URL+"/cert.pem"), claims(), k.evil)), want: fhir.ReasonTokenInvalid, why: "the token header carries x5u, which is not accepted"},
		{name: "x5c", header: authnBearerHeader(ec(with(ecHdr(), "x5c", []string{"MIIB"}), claims())), want: fhir.ReasonTokenInvalid, why: "the token header carries x5c, which is not accepted"},
		{name: "crit unknown extension", header: authnBearerHeader(ec(with(ecHdr(), "crit", []string{"exp"}, "exp", 1), claims())), want: fhir.ReasonTokenInvalid, why: "the token header carries crit, which is not accepted"},
		{name: "crit b64", header: authnBearerHeader(ec(with(ecHdr(), "crit", []string{"b64"}, "b64", false), claims())), want: fhir.ReasonTokenInvalid, why: "the token header carries b64, which is not accepted"},

		// Times.
		{name: "expired", header: authnBearerHeader(ec(ecHdr(), with(claims(), "exp", now.Add(-2*time.Minute).Unix()))), want: fhir.ReasonTokenExpired, why: "the token has expired"},
		{name: "expired within skew", header: authnBearerHeader(ec(ecHdr(), with(claims(), "exp", now.Add(-30*time.Second).Unix()))), agent: authnTestAgent},
		{name: "missing exp", header: authnBearerHeader(ec(ecHdr(), with(claims(), "exp", nil))), want: fhir.ReasonTokenInvalid, why: "the token has no expiry (exp)"},
		{name: "exp as string", header: authnBearerHeader(ec(ecHdr(), with(claims(), "exp", "99999999999"))), want: fhir.ReasonTokenMalformed, why: "the claim exp is malformed"},
		{name: "exp beyond year 9999", header: authnBearerHeader(ec(ecHdr(), with(claims(), "exp", 1e300))), want: fhir.ReasonTokenMalformed, why: "the claim exp is malformed"},
		{name: "nbf in the future", header: authnBearerHeader(ec(ecHdr(), with(claims(), "nbf", now.Add(5*time.Minute).Unix()))), want: fhir.ReasonTokenNotYetValid, why: "the token is not valid yet (nbf)"},
		{name: "nbf within skew", header: authnBearerHeader(ec(ecHdr(), with(claims(), "nbf", now.Add(30*time.Second).Unix()))), agent: authnTestAgent},
		{name: "iat far in the future", header: authnBearerHeader(ec(ecHdr(), with(claims(), "iat", now.Add(time.Hour).Unix()))), want: fhir.ReasonTokenNotYetValid, why: "the token was issued in the future (iat)"},

		// Issuer.
		{name: "wrong iss", header: authnBearerHeader(ec(ecHdr(), with(claims(), "iss", "https://evil.test"))), want: fhir.ReasonIssuerUnknown, why: "the token's issuer is not trusted"},
		{name: "iss with trailing slash", header: authnBearerHeader(ec(ecHdr(), with(claims(), "iss", authnTestIssuer+"/"))), want: fhir.ReasonIssuerUnknown, why: "the token's issuer is not trusted"},
		{name: "iss in other case", header: authnBearerHeader(ec(ecHdr(), with(claims(), "iss", "HTTPS://IDP.TEST"))), want: fhir.ReasonIssuerUnknown, why: "the token's issuer is not trusted"},
		{name: "missing iss", header: authnBearerHeader(ec(ecHdr(), with(claims(), "iss", nil))), want: fhir.ReasonIssuerUnknown, why: "the token has no issuer"},

		// Audience.
		{name: "aud array containing ours", header: authnBearerHeader(ec(ecHdr(), with(claims(), "aud", []string{"https://else", authnTestAudience}))), agent: authnTestAgent},
		{name: "aud second configured audience", header: authnBearerHeader(ec(ecHdr(), with(claims(), "aud", "https://gateway.test/other"))), agent: authnTestAgent},
		{name: "aud wrong string", header: authnBearerHeader(ec(ecHdr(), with(claims(), "aud", "https://else"))), want: fhir.ReasonAudienceMismatch, why: "the token's audience does not name this gateway"},
		{name: "aud array without ours", header: authnBearerHeader(ec(ecHdr(), with(claims(), "aud", []string{"https://a", "https://b"}))), want: fhir.ReasonAudienceMismatch, why: "the token's audience does not name this gateway"},
		{name: "aud empty array", header: authnBearerHeader(ec(ecHdr(), with(claims(), "aud", []string{}))), want: fhir.ReasonAudienceMismatch, why: "the token's audience does not name this gateway"},
		{name: "aud missing", header: authnBearerHeader(ec(ecHdr(), with(claims(), "aud", nil))), want: fhir.ReasonAudienceMismatch, why: "the token has no audience (aud)"},
		{name: "aud prefix of ours", header: authnBearerHeader(ec(ecHdr(), with(claims(), "aud", "https://gateway.test"))), want: fhir.ReasonAudienceMismatch, why: "the token's audience does not name this gateway"},
		{name: "aud number", header: authnBearerHeader(ec(ecHdr(), with(claims(), "aud", 5))), want: fhir.ReasonTokenMalformed, why: "the claim aud is malformed"},

		// typ.
		{name: "typ application/at+jwt", header: authnBearerHeader(ec(with(ecHdr(), "typ", "application/at+jwt"), claims())), agent: authnTestAgent},
		{name: "typ AT+JWT", header: authnBearerHeader(ec(with(ecHdr(), "typ", "AT+JWT"), claims())), agent: authnTestAgent},
		{name: "typ JWT not allowed", header: authnBearerHeader(ec(with(ecHdr(), "typ", "JWT"), claims())), want: fhir.ReasonTokenInvalid, why: "the token's typ is not accepted for its issuer (is it an ID "},
		{name: "typ missing", header: authnBearerHeader(ec(with(ecHdr(), "typ", nil), claims())), want: fhir.ReasonTokenInvalid, why: "the token has no typ header; an access token (at+jwt) is req"},
		{name: "ID token", header: authnBearerHeader(ec(with(ecHdr(), "typ", "JWT"), with(claims(), "nonce", "n", "aud", authnTestAudience))), want: fhir.ReasonTokenInvalid, why: "the token's typ is not accepted for its issuer (is it an ID "},
		{name: "logout token", header: authnBearerHeader(ec(with(ecHdr(), "typ", "logout+jwt"), claims())), want: fhir.ReasonTokenInvalid, why: "the token's typ is not accepted for its issuer (is it an ID "},

		// Duplicate and case-variant names.
		{name: "duplicate sub", header: authnBearerHeader(authnSignRaw(t, authnJSON(t, ecHdr()), `{"iss":"`+authnTestIssuer+`","aud":"`+authnTestAudience+`","exp":`+authnI64(now.Add(time.Minute).Unix())+`,"sub":"`+authnTestAgent+`","sub":"agent-admin"}`, "ES256", k.ec1)), want: fhir.ReasonTokenMalformed, why: "the token payload is not valid JSON"},
		{name: "case-variant Sub and sub", header: authnBearerHeader(authnSignRaw(t, authnJSON(t, ecHdr()), `{"iss":"`+authnTestIssuer+`","aud":"`+authnTestAudience+`","exp":`+authnI64(now.Add(time.Minute).Unix())+`,"sub":"`+authnTestAgent+`","Sub":"agent-admin"}`, "ES256", k.ec1)), want: fhir.ReasonTokenMalformed, why: "the token payload repeats a claim name (ignoring case)"},
		{name: "case-variant SUB alone", header: authnBearerHeader(ec(ecHdr(), with(claims(), "sub", nil, "SUB", "agent-admin"))), want: fhir.ReasonTokenMalformed, why: "the token payload has a case variant of the claim sub"},
		{name: "case-variant unknown claims", header: authnBearerHeader(ec(ecHdr(), with(claims(), "role", "a", "Role", "b"))), want: fhir.ReasonTokenMalformed, why: "the token payload repeats a claim name (ignoring case)"},
		{name: "duplicate nested name", header: authnBearerHeader(authnSignRaw(t, authnJSON(t, ecHdr()), `{"iss":"`+authnTestIssuer+`","aud":"`+authnTestAudience+`","exp":`+authnI64(now.Add(time.Minute).Unix())+`,"sub":"`+authnTestAgent+`","ext":{"a":1,"a":2}}`, "ES256", k.ec1)), want: fhir.ReasonTokenMalformed, why: "a claim is malformed"},
		{name: "duplicate alg in header", header: authnBearerHeader(authnSignRaw(t, `{"alg":"ES256","kid":"ec-1","typ":"at+jwt","alg":"none"}`, authnJSON(t, claims()), "ES256", k.ec1)), want: fhir.ReasonTokenMalformed, why: "the token header is not valid JSON"},
		{name: "payload not an object", header: authnBearerHeader(authnSignRaw(t, authnJSON(t, ecHdr()), `["iss"]`, "ES256", k.ec1)), want: fhir.ReasonTokenMalformed, why: "the token payload is not a JSON object"},
		{name: "payload with trailing data", header: authnBearerHeader(authnSignRaw(t, authnJSON(t, ecHdr()), authnJSON(t, claims())+`{}`, "ES256", k.ec1)), want: fhir.ReasonTokenMalformed, why: "the token payload is not valid JSON"},
		{name: "payload invalid UTF-8", header: authnBearerHeader(authnSignRaw(t, authnJSON(t, ecHdr()), `{"iss":"`+authnTestIssuer+`","sub":"a`+"\xff"+`"}`, "ES256", k.ec1)), want: fhir.ReasonTokenMalformed, why: "the claim sub is malformed"},

		// Agent id and scopes.
		{name: "no sub falls back to client_id", header: authnBearerHeader(ec(ecHdr(), with(claims(), "sub", nil))), agent: "billing-client"},
		{name: "empty sub", header: authnBearerHeader(ec(ecHdr(), with(claims(), "sub", ""))), want: fhir.ReasonTokenInvalid, why: "the token's agent claim is empty"},
		{name: "sub not a string", header: authnBearerHeader(ec(ecHdr(), with(claims(), "sub", 42))), want: fhir.ReasonTokenMalformed, why: "the claim sub is malformed"},
		{name: "neither sub nor client_id", header: authnBearerHeader(ec(ecHdr(), with(claims(), "sub", nil, "client_id", nil))), want: fhir.ReasonTokenInvalid, why: "the token names no agent (neither sub nor client_id)"},
		{name: "scope and scp both", header: authnBearerHeader(ec(ecHdr(), with(claims(), "scp", []string{"system/*.rs"}))), want: fhir.ReasonTokenMalformed, why: "the token carries both scope and scp"},
		{name: "unregistered agent", header: authnBearerHeader(ec(ecHdr(), with(claims(), "sub", "agent-rogue"))), want: fhir.ReasonAgentUnknown, why: "the agent is not registered"},

		// Transport.
		{name: "no Authorization header", header: http.Header{}, want: fhir.ReasonTokenMissing, why: "no Authorization header"},
		{name: "two Authorization headers", header: http.Header{"Authorization": {"Bearer " + good, "Bearer " + good}}, want: fhir.ReasonTokenMalformed, why: "more than one Authorization header"},
		{name: "two tokens in one header", header: http.Header{"Authorization": {"Bearer " + good + ", Bearer " + good}}, want: fhir.ReasonTokenMalformed, why: "the bearer token is not a compact JWS (unexpected character)"},
		{name: "empty header", header: http.Header{"Authorization": {""}}, want: fhir.ReasonTokenMalformed, why: "the Authorization header is not of the form 'Bearer <token>'"},
		{name: "Basic scheme", header: http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}, want: fhir.ReasonTokenMalformed, why: "the Authorization header is not of the form 'Bearer <token>'"},
		{name: "Bearer without token", header: http.Header{"Authorization": {"Bearer"}}, want: fhir.ReasonTokenMalformed, why: "the Authorization header is not of the form 'Bearer <token>'"},
		{name: "Bearer and a space", header: http.Header{"Authorization": {"Bearer "}}, want: fhir.ReasonTokenMalformed, why: "the bearer token is empty"},
		{name: "two spaces", header: http.Header{"Authorization": {"Bearer  " + good}}, want: fhir.ReasonTokenMalformed, why: "the bearer token is not a compact JWS (unexpected character)"},
		{name: "tab separator", header: http.Header{"Authorization": {"Bearer\t" + good}}, want: fhir.ReasonTokenMalformed, why: "the Authorization header is not of the form 'Bearer <token>'"},
		{name: "trailing space", header: http.Header{"Authorization": {"Bearer " + good + " "}}, want: fhir.ReasonTokenMalformed, why: "the bearer token is not a compact JWS (unexpected character)"},
		{name: "Bearer prefix glued", header: http.Header{"Authorization": {"Bearer" + good}}, want: fhir.ReasonTokenMalformed, why: "the Authorization header is not of the form 'Bearer <token>'"},
		{name: "two segments", header: authnBearerHeader(good[:strings.LastIndexByte(good, '.')]), want: fhir.ReasonTokenMalformed, why: "the bearer token is not a compact JWS (want three segments)"},
		{name: "five segments (JWE)", header: authnBearerHeader("a.b.c.d.e"), want: fhir.ReasonTokenMalformed, why: "the bearer token is not a compact JWS (want three segments)"},
		{name: "padded base64", header: authnBearerHeader(good + "=="), want: fhir.ReasonTokenMalformed, why: "the bearer token is not a compact JWS (unexpected character)"},
		{name: "header not base64", header: authnBearerHeader("!!!." + good[strings.IndexByte(good, '.')+1:]), want: fhir.ReasonTokenMalformed, why: "the bearer token is not a compact JWS (unexpected character)"},
		{name: "header not JSON", header: authnBearerHeader(base64.RawURLEncoding.EncodeToString([]byte("alg")) + good[strings.IndexByte(good, '.'):]), want: fhir.ReasonTokenMalformed, why: "the token header is not a JSON object"},
		{name: "oversized token", header: authnBearerHeader(ec(ecHdr(), with(claims(), "pad", strings.Repeat("x", 9000)))), want: fhir.ReasonTokenMalformed, why: "the bearer token is larger than allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.auth.Authenticate(context.Background(), tc.header)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if p.AgentID != tc.agent {
					t.Fatalf("agent = %q, want %q", p.AgentID, tc.agent)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted (agent %q), want %s", p.AgentID, tc.want)
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *fhir.Error", err)
			}
			if fe.Reason != tc.want || !strings.Contains(fe.Detail, tc.why) {
				t.Fatalf("refused with %v, want %s: ...%s...", err, tc.want, tc.why)
			}
			if p != nil {
				t.Fatal("a refusal returned a principal")
			}
			if strings.Contains(fe.Detail, "eyJ") {
				t.Fatalf("detail leaks token content: %q", fe.Detail)
			}
		})
	}
	if n := evilHits.Load(); n != 0 {
		t.Fatalf("the jku/x5u server was contacted %d times", n)
	}
}

// TestAuthenticatePrincipal checks every field the Principal carries.
func TestAuthenticatePrincipal(t *testing.T) {
	s := newAuthnTestSetup(t)
	now := s.clock.Now()
	c := authnDefaultClaims(now)
	c["patient"] = "Patient/123"
	c["purpose_of_use"] = []string{"TREAT", "HPAYMT"}
	c["nbf"] = now.Add(-time.Minute).Unix()
	tok := authnSign(t, map[string]any{"alg": "ES256", "kid": "ec-1", "typ": "at+jwt"}, c, s.keys.ec1)
	p, err := s.auth.Authenticate(context.Background(), authnBearerHeader(tok))
	if err != nil {
		t.Fatal(err)
	}
	want := Principal{
		AgentID:      authnTestAgent,
		Issuer:       authnTestIssuer,
		Subject:      authnTestAgent,
		ClientID:     "billing-client",
		JTI:          "jti-1",
		Scopes:       []string{"system/Claim.rs", "system/Coverage.rs"},
		Patient:      "Patient/123",
		PurposeOfUse: []string{"TREAT", "HPAYMT"},
		ExpiresAt:    now.Add(5 * time.Minute).UTC(),
		IssuedAt:     now.UTC(),
	}
	if p.TokenHash == "" || len(p.TokenHash) != 64 || strings.Contains(p.TokenHash, tok) {
		t.Fatalf("TokenHash = %q", p.TokenHash)
	}
	p.TokenHash = ""
	if !authnPrincipalEqual(*p, want) {
		t.Fatalf("principal = %+v\nwant %+v", *p, want)
	}

	// scp as an array; a caller mutating its copy does not touch the cache.
	c = authnDefaultClaims(now)
	delete(c, "scope")
	c["scp"] = []string{"system/Patient.rs"}
	tok = authnSign(t, map[string]any{"alg": "ES256", "kid": "ec-1", "typ": "at+jwt"}, c, s.keys.ec1)
	p, err = s.auth.Authenticate(context.Background(), authnBearerHeader(tok))
	if err != nil || len(p.Scopes) != 1 || p.Scopes[0] != "system/Patient.rs" {
		t.Fatalf("scp: %v %+v", err, p)
	}
	p.Scopes[0] = "system/*.*"
	p2, err := s.auth.Authenticate(context.Background(), authnBearerHeader(tok))
	if err != nil || p2.Scopes[0] != "system/Patient.rs" {
		t.Fatalf("cached principal was modified through a returned copy: %v %+v", err, p2)
	}
}

func authnPrincipalEqual(a, b Principal) bool {
	return a.AgentID == b.AgentID && a.Issuer == b.Issuer && a.Subject == b.Subject &&
		a.ClientID == b.ClientID && a.JTI == b.JTI && a.Patient == b.Patient &&
		strings.Join(a.Scopes, " ") == strings.Join(b.Scopes, " ") &&
		strings.Join(a.PurposeOfUse, " ") == strings.Join(b.PurposeOfUse, " ") &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.IssuedAt.Equal(b.IssuedAt) && a.TokenHash == b.TokenHash
}

func authnPKIX(t *testing.T, pub any) []byte {
	t.Helper()
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func authnJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func authnI64(v int64) string { return strconv.FormatInt(v, 10) }

// swapPayload keeps tok's header and signature and replaces its payload.
func authnSwapPayload(t *testing.T, tok string, claims map[string]any) string {
	parts := strings.Split(tok, ".")
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(authnJSON(t, claims)))
	return strings.Join(parts, ".")
}

// TestAuthnManyClaims: a payload of thousands of tiny claims is handled in
// linear time, and a case-duplicate at its end is still found.
func TestAuthnManyClaims(t *testing.T) {
	s := newAuthnTestSetup(t, func(_ *IssuerSpec, o *AuthOptions) { o.MaxTokenBytes = 1 << 20 })
	var b strings.Builder
	b.WriteString(`{"iss":"` + authnTestIssuer + `","sub":"` + authnTestAgent + `","aud":"` + authnTestAudience + `","exp":` + authnI64(s.clock.Now().Add(time.Minute).Unix()))
	for i := 0; i < 20000; i++ {
		b.WriteString(`,"c` + strconv.Itoa(i) + `":0`)
	}
	hdr := `{"alg":"ES256","kid":"ec-1","typ":"at+jwt"}`
	start := time.Now()
	ok := authnSignRaw(t, hdr, b.String()+`}`, "ES256", s.keys.ec1)
	if _, err := s.auth.Authenticate(context.Background(), authnBearerHeader(ok)); err != nil {
		t.Fatalf("many distinct claims: %v", err)
	}
	dup := authnSignRaw(t, hdr, b.String()+`,"C19999":1}`, "ES256", s.keys.ec1)
	if _, err := s.auth.Authenticate(context.Background(), authnBearerHeader(dup)); fhir.ReasonOf(err) != fhir.ReasonTokenMalformed {
		t.Fatalf("case duplicate among many claims: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("20000 claims took %s", d)
	}
}
