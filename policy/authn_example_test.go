package policy_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/policy"
)

// A development issuer: a key on disk, its JWKS as a jwks_file, a token
// minted for an agent, and the gateway's Authenticator accepting it.
func ExampleMintDevToken() {
	dir, _ := os.MkdirTemp("", "fhirwall-example")
	defer os.RemoveAll(dir)
	keyPath := filepath.Join(dir, "issuer.pem")
	if err := policy.GenerateDevKey(keyPath); err != nil {
		panic(err)
	}
	key, err := policy.LoadSigningKey(keyPath)
	if err != nil {
		panic(err)
	}
	jwks, _ := policy.PublicJWKS(key)
	jwksPath := filepath.Join(dir, "jwks.json")
	_ = os.WriteFile(jwksPath, jwks, 0o600)

	auth, err := policy.NewAuthenticator([]policy.IssuerSpec{{
		Issuer:     "http://127.0.0.1:8080/dev-issuer",
		JWKSFile:   jwksPath,
		Audiences:  []string{"http://127.0.0.1:8080/fhir"},
		Algorithms: []string{"ES256"},
	}}, policy.AuthOptions{
		Registered: func(id string) bool { return id == "agent-billing-07" },
	})
	if err != nil {
		panic(err)
	}
	defer auth.Close()

	token, err := policy.MintDevToken(key, policy.DevToken{
		Issuer:   "http://127.0.0.1:8080/dev-issuer",
		Audience: "http://127.0.0.1:8080/fhir",
		Agent:    "agent-billing-07",
		Scopes:   []string{"system/Claim.rs", "system/Coverage.rs"},
	})
	if err != nil {
		panic(err)
	}

	h := http.Header{}
	h.Set("Authorization", "Bearer "+token)
	p, err := auth.Authenticate(context.Background(), h)
	if err != nil {
		panic(err)
	}
	fmt.Println(p.AgentID, p.Scopes)

	// The same token with one character of its signature changed is refused.
	b := []byte(token)
	if i := len(b) - 10; b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	h.Set("Authorization", "Bearer "+string(b))
	_, err = auth.Authenticate(context.Background(), h)
	fmt.Println(fhir.ReasonOf(err))
	fmt.Println(policy.WWWAuthenticate(err))
	// Output:
	// agent-billing-07 [system/Claim.rs system/Coverage.rs]
	// token-invalid
	// Bearer error="invalid_token", error_description="the token's signature does not verify"
}
