package policy

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/fhirwall/fhirwall/fhir"
)

// FuzzAuthnHeader: any Authorization value is refused or accepted without
// panicking, and every refusal carries an authentication reason.
func FuzzAuthnHeader(f *testing.F) {
	s := newAuthnTestSetup(f)
	good := authnECToken(f, s, "ec-1", s.keys.ec1)
	for _, seed := range []string{"", "Bearer ", "Bearer " + good, "bearer " + good + "x", "Basic x", "Bearer a.b.c", "Bearer e30.e30.", "Bearer " + strings.Repeat("A.", 5000)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		p, err := s.auth.Authenticate(context.Background(), http.Header{"Authorization": {v}})
		authnFuzzCheck(t, p, err)
	})
}

// FuzzAuthnSigned: any header and payload, correctly signed by the
// issuer's key, is accepted only with a registered agent, an exp, and
// the typ and audience the issuer expects.
func FuzzAuthnSigned(f *testing.F) {
	s := newAuthnTestSetup(f)
	f.Add(`{"alg":"ES256","kid":"ec-1","typ":"at+jwt"}`, authnJSON(f, authnDefaultClaims(s.clock.Now())))
	f.Add(`{"alg":"ES256","typ":"at+jwt","crit":["x"]}`, `{"iss":"https://idp.test","sub":"agent-billing-07","aud":["https://gateway.test/fhir"],"exp":1800000100}`)
	f.Add(`{"alg":"ES256","kid":"ec-1","typ":"AT+JWT"}`, `{"iss":"https://idp.test","Sub":"x","client_id":"billing-client","aud":"https://gateway.test/fhir","exp":1800000100.5}`)
	f.Fuzz(func(t *testing.T, header, payload string) {
		if !strings.Contains(header, `"alg":"ES256"`) {
			return // only ES256 can be signed here; others are refused earlier anyway
		}
		tok := authnSignRaw(t, header, payload, "ES256", s.keys.ec1)
		p, err := s.auth.Authenticate(context.Background(), authnBearerHeader(tok))
		authnFuzzCheck(t, p, err)
		if err == nil && (!strings.Contains(payload, "exp") || !strings.Contains(payload, "aud")) {
			t.Fatalf("accepted a token without exp or aud: %s", payload)
		}
	})
}

func authnFuzzCheck(t *testing.T, p *Principal, err error) {
	t.Helper()
	if err != nil {
		if p != nil {
			t.Fatal("refusal with a principal")
		}
		switch fhir.ReasonOf(err) {
		case fhir.ReasonTokenMissing, fhir.ReasonTokenMalformed, fhir.ReasonTokenInvalid, fhir.ReasonTokenExpired,
			fhir.ReasonTokenNotYetValid, fhir.ReasonIssuerUnknown, fhir.ReasonAudienceMismatch, fhir.ReasonAgentUnknown:
		default:
			t.Fatalf("unexpected reason: %v", err)
		}
		return
	}
	if p.AgentID != authnTestAgent && p.AgentID != "billing-client" {
		t.Fatalf("accepted unregistered agent %q", p.AgentID)
	}
}
