package policy

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"

	"github.com/fhirwall/fhirwall/fhir"
)

func authnECToken(t testing.TB, s *authnTestSetup, kid string, key any) string {
	t.Helper()
	return authnSign(t, map[string]any{"alg": "ES256", "kid": kid, "typ": "at+jwt"}, authnDefaultClaims(s.clock.Now()), key)
}

func authnReason(t testing.TB, s *authnTestSetup, tok string) fhir.Reason {
	t.Helper()
	_, err := s.auth.Authenticate(context.Background(), authnBearerHeader(tok))
	if err == nil {
		return ""
	}
	return fhir.ReasonOf(err)
}

// TestAuthnKeyRotation: the IdP replaces its key; a token signed with the
// new key verifies after exactly one refresh, without a restart, and the
// retired key stops verifying once the new set is loaded.
func TestAuthnKeyRotation(t *testing.T) {
	s := newAuthnTestSetup(t)
	if r := authnReason(t, s, authnECToken(t, s, "ec-1", s.keys.ec1)); r != "" {
		t.Fatalf("before rotation: %s", r)
	}
	before := s.idp.fetches.Load()

	s.idp.setKeys(t, []authnJWK{{kid: "ec-2", priv: s.keys.ec2}})
	// Still inside MinRefreshInterval of the first fetch: the bound holds
	// even for a legitimate new key.
	if r := authnReason(t, s, authnECToken(t, s, "ec-2", s.keys.ec2)); r != fhir.ReasonTokenInvalid {
		t.Fatalf("new kid inside the refresh bound: %q, want token-invalid", r)
	}
	if got := s.idp.fetches.Load(); got != before {
		t.Fatalf("fetched %d times inside the bound", got-before)
	}

	s.clock.Advance(31 * time.Second)
	if r := authnReason(t, s, authnECToken(t, s, "ec-2", s.keys.ec2)); r != "" {
		t.Fatalf("after rotation: %s", r)
	}
	if got := s.idp.fetches.Load(); got != before+1 {
		t.Fatalf("rotation took %d fetches, want 1", got-before)
	}
	if r := authnReason(t, s, authnECToken(t, s, "ec-1", s.keys.ec1)); r != fhir.ReasonTokenInvalid {
		t.Fatalf("retired key: %q, want token-invalid", r)
	}
}

// TestAuthnUnknownKidFlood: many tokens with random kids, from many
// goroutines, cause at most one fetch per MinRefreshInterval.
func TestAuthnUnknownKidFlood(t *testing.T) {
	s := newAuthnTestSetup(t)
	base := s.idp.fetches.Load() // the initial fetch
	if base != 1 {
		t.Fatalf("initial fetches = %d, want 1", base)
	}
	flood := func() {
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					var b [8]byte
					_, _ = rand.Read(b[:])
					tok := authnECToken(t, s, hex.EncodeToString(b[:]), s.keys.ec1)
					if r := authnReason(t, s, tok); r != fhir.ReasonTokenInvalid {
						t.Errorf("random kid: %q", r)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	flood()
	if got := s.idp.fetches.Load(); got != base {
		t.Fatalf("400 random kids inside the interval caused %d fetches, want 0", got-base)
	}
	s.clock.Advance(31 * time.Second)
	flood()
	if got := s.idp.fetches.Load(); got != base+1 {
		t.Fatalf("400 random kids after the interval caused %d fetches, want 1", got-base)
	}
}

// TestAuthnStaleRefresh: a key set older than RefreshInterval is fetched
// again in the background while requests keep being served.
func TestAuthnStaleRefresh(t *testing.T) {
	s := newAuthnTestSetup(t)
	before := s.idp.fetches.Load()
	s.clock.Advance(16 * time.Minute)
	if r := authnReason(t, s, authnECToken(t, s, "ec-1", s.keys.ec1)); r != "" {
		t.Fatalf("stale set: %s", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.idp.fetches.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("a stale key set was not refreshed")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAuthnIdPDown: a failing IdP keeps the loaded keys in use; an issuer
// that never loaded a set is not Ready and refuses tokens.
func TestAuthnIdPDown(t *testing.T) {
	s := newAuthnTestSetup(t)
	s.idp.setStatus(http.StatusInternalServerError)
	s.clock.Advance(time.Minute)
	// Unknown kid forces a (failing) fetch; known keys still verify.
	if r := authnReason(t, s, authnECToken(t, s, "ec-9", s.keys.ec1)); r != fhir.ReasonTokenInvalid {
		t.Fatalf("unknown kid with IdP down: %q", r)
	}
	if r := authnReason(t, s, authnECToken(t, s, "ec-1", s.keys.ec1)); r != "" {
		t.Fatalf("known kid with IdP down: %s", r)
	}
	if err := s.auth.Ready(context.Background()); err != nil {
		t.Fatalf("Ready with a loaded set: %v", err)
	}

	idp := newAuthnTestIdP(t, nil)
	idp.setStatus(http.StatusServiceUnavailable)
	a, err := NewAuthenticator([]IssuerSpec{{
		Issuer: authnTestIssuer, JWKSURL: idp.srv.URL, Audiences: []string{authnTestAudience}, Algorithms: []string{"ES256"},
	}}, AuthOptions{HTTPClient: idp.srv.Client(), Registered: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Ready(context.Background()); err == nil {
		t.Fatal("Ready without any key set")
	}
	_, err = a.Authenticate(context.Background(), authnBearerHeader(authnECToken(t, s, "ec-1", s.keys.ec1)))
	if fhir.ReasonOf(err) != fhir.ReasonTokenInvalid {
		t.Fatalf("no key set: %v", err)
	}
}

// TestAuthnJWKSFile: a jwks_file issuer is loaded at construction.
func TestAuthnJWKSFile(t *testing.T) {
	keys := authnKeys(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(good, authnJWKSBody(t, []authnJWK{{kid: "ec-1", priv: keys.ec1}}), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := IssuerSpec{Issuer: authnTestIssuer, JWKSFile: good, Audiences: []string{authnTestAudience}, Algorithms: []string{"ES256"}}
	a, err := NewAuthenticator([]IssuerSpec{spec}, AuthOptions{Registered: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok := authnSign(t, map[string]any{"alg": "ES256", "kid": "ec-1", "typ": "at+jwt"}, authnDefaultClaims(time.Now()), keys.ec1)
	if _, err := a.Authenticate(context.Background(), authnBearerHeader(tok)); err != nil {
		t.Fatal(err)
	}

	for name, tc := range map[string]struct{ body, why string }{
		"missing":   {"", "no such file"},
		"not json":  {"{", "parse key set"},
		"only HMAC": {`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}]}`, "cannot verify signatures"},
		"RSA only":  {string(authnJWKSBody(t, []authnJWK{{kid: "r", priv: keys.rsa1}})), "no allowed algorithm fits"}, // allow-list is ES256
		"enc use":   {string(authnJWKSBody(t, []authnJWK{{kid: "e", use: "enc", priv: keys.ec1}})), `key use "enc"`},
		"bad alg":   {string(authnJWKSBody(t, []authnJWK{{kid: "e", alg: "ES384", priv: keys.ec1}})), `key alg "ES384"`},
	} {
		body := tc.body
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "missing.json")
			if body != "" {
				path = filepath.Join(dir, name+".json")
				if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			spec := spec
			spec.JWKSFile = path
			a, err := NewAuthenticator([]IssuerSpec{spec}, AuthOptions{Registered: func(string) bool { return true }})
			if err == nil {
				a.Close()
				t.Fatal("accepted a key set with no usable key")
			}
			if !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("error %q does not say %q", err, tc.why)
			}
		})
	}
}

// TestAuthnKeyAlgPinning: a JWK that names its alg verifies that alg only,
// even when the allow-list and the key type would admit another.
func TestAuthnKeyAlgPinning(t *testing.T) {
	keys := authnKeys(t)
	idp := newAuthnTestIdP(t, []authnJWK{{kid: "r", alg: "PS256", priv: keys.rsa1}})
	a, err := NewAuthenticator([]IssuerSpec{{
		Issuer: authnTestIssuer, JWKSURL: idp.srv.URL, Audiences: []string{authnTestAudience}, Algorithms: []string{"RS256", "PS256"},
	}}, AuthOptions{HTTPClient: idp.srv.Client(), Registered: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for alg, want := range map[string]fhir.Reason{"PS256": "", "RS256": fhir.ReasonTokenInvalid} {
		tok := authnSign(t, map[string]any{"alg": alg, "kid": "r", "typ": "at+jwt"}, authnDefaultClaims(time.Now()), keys.rsa1)
		_, err := a.Authenticate(context.Background(), authnBearerHeader(tok))
		got := fhir.Reason("")
		if err != nil {
			got = fhir.ReasonOf(err)
		}
		if got != want {
			t.Errorf("%s: %q (%v), want %q", alg, got, err, want)
		}
	}
}

// TestAuthnJWKSFetchLimits: a JWKS endpoint that answers junk or too much
// leaves the issuer without keys rather than with wrong ones.
func TestAuthnJWKSFetchLimits(t *testing.T) {
	srv := newAuthnTestIdP(t, nil)
	srv.mu.Lock()
	srv.body = make([]byte, authnMaxJWKSBytes+10)
	srv.mu.Unlock()
	ks := &authnKeySource{url: srv.srv.URL, client: srv.srv.Client(), now: time.Now, sem: make(chan struct{}, 1), base: context.Background()}
	if _, err := ks.fetch(context.Background()); err == nil {
		t.Fatal("accepted an oversized JWKS")
	}
	srv.mu.Lock()
	srv.body = []byte(`<html>`)
	srv.mu.Unlock()
	if _, err := ks.fetch(context.Background()); err == nil {
		t.Fatal("accepted a non-JSON JWKS")
	}
	if err := ks.refresh(context.Background(), true); err == nil || ks.loaded() {
		t.Fatal("refresh with junk loaded a key set")
	}
	if err := ks.lastError(); err == nil || !strings.Contains(err.Error(), "parse key set") {
		t.Fatalf("lastError = %v, want the parse failure", err)
	}
}

// TestAuthnAlgorithms: every supported algorithm verifies with a key of the
// fitting type, through a jwks_file issuer that allows only that algorithm.
func TestAuthnAlgorithms(t *testing.T) {
	keys := authnKeys(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		alg  string
		priv crypto.Signer
	}{
		{"RS256", keys.rsa1}, {"RS384", keys.rsa1}, {"RS512", keys.rsa1},
		{"PS256", keys.rsa1}, {"PS384", keys.rsa1}, {"PS512", keys.rsa1},
		{"ES256", keys.ec1}, {"ES384", p384}, {"ES512", p521},
		{"EdDSA", ed}, {"Ed25519", ed},
	} {
		t.Run(tc.alg, func(t *testing.T) {
			path := filepath.Join(dir, tc.alg+".json")
			if err := os.WriteFile(path, authnJWKSBody(t, []authnJWK{{kid: "k", priv: tc.priv}}), 0o600); err != nil {
				t.Fatal(err)
			}
			a, err := NewAuthenticator([]IssuerSpec{{
				Issuer: authnTestIssuer, JWKSFile: path, Audiences: []string{authnTestAudience}, Algorithms: []string{tc.alg},
			}}, AuthOptions{Registered: func(string) bool { return true }})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			tok := authnSign(t, map[string]any{"alg": tc.alg, "kid": "k", "typ": "at+jwt"}, authnDefaultClaims(time.Now()), tc.priv)
			if _, err := a.Authenticate(context.Background(), authnBearerHeader(tok)); err != nil {
				t.Fatalf("%s: %v", tc.alg, err)
			}
		})
	}
}

// TestAuthnMixedJWKS: a realistic IdP key set (testdata/authn/mixed-jwks.json)
// holds keys for other uses; only signature keys that fit the allow-list
// are kept, and the rest do not make the set unusable.
func TestAuthnMixedJWKS(t *testing.T) {
	body, err := os.ReadFile("testdata/authn/mixed-jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := authnParseKeySet(body, []jwa.SignatureAlgorithm{jwa.ES256(), jwa.RS256()})
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, k := range snap.all {
		kept = append(kept, k.kid)
	}
	// Dropped: rsa-weak (1024 bits), ec-enc (use enc), ec-wrong-alg (alg
	// ES384 on a P-256 key), hmac (symmetric), x25519 (key agreement),
	// future (unknown kty).
	if got := strings.Join(kept, ","); got != "ec-sig,rsa-sig" {
		t.Fatalf("kept %s, want ec-sig,rsa-sig", got)
	}
	if c := snap.candidates("rsa-sig", true, jwa.ES256()); len(c) != 0 {
		t.Fatal("an RSA key is a candidate for ES256")
	}
	if c := snap.candidates("", false, jwa.ES256()); len(c) != 1 || c[0].kid != "ec-sig" {
		t.Fatalf("kid-less ES256 candidates: %v", c)
	}
}
