package policy

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

func TestGenerateDevKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "issuer.pem")
	if err := GenerateDevKey(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	body, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(body), "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("not a PKCS#8 PEM: %.40q", body)
	}
	if err := GenerateDevKey(path); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("overwrote an existing key: %v", err)
	}
	key, err := LoadSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := key.KeyID()
	tp, _ := key.Thumbprint(crypto.SHA256)
	if kid != base64.RawURLEncoding.EncodeToString(tp) {
		t.Fatalf("kid %q is not the RFC 7638 thumbprint", kid)
	}
	if alg, _ := key.Algorithm(); alg.String() != "ES256" {
		t.Fatalf("alg = %v", alg)
	}

	jwks, err := PublicJWKS(key)
	if err != nil {
		t.Fatal(err)
	}
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal(jwks, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", jwks, err)
	}
	if _, leaked := set.Keys[0]["d"]; leaked {
		t.Fatal("the public JWKS carries the private key")
	}
	if set.Keys[0]["kid"] != kid || set.Keys[0]["alg"] != "ES256" || set.Keys[0]["use"] != "sig" {
		t.Fatalf("JWKS entry %v", set.Keys[0])
	}
}

func TestLoadSigningKeyRefuses(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"not pem":    "hello",
		"public key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
		"bad der":    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadSigningKey(path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := LoadSigningKey(filepath.Join(dir, "absent")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent file: %v", err)
	}
}

// TestMintDevToken: a minted token passes Authenticate with every claim
// intact, and carries the RFC 9068 header.
func TestMintDevToken(t *testing.T) {
	key, auth := devTestIssuer(t)
	tok, err := MintDevToken(key, DevToken{
		Issuer: "http://127.0.0.1:8080/issuer", Audience: "http://127.0.0.1:8080/fhir", Agent: "agent-triage-02",
		Scopes: []string{"patient/Observation.rs", "patient/Patient.r"}, Patient: "pat-1", TTL: 10 * time.Minute,
		PurposeOfUse: []string{"TREAT"},
	})
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(tok[:strings.IndexByte(tok, '.')])
	var h map[string]any
	if err := json.Unmarshal(hdr, &h); err != nil || h["typ"] != "at+jwt" || h["alg"] != "ES256" || h["kid"] == nil {
		t.Fatalf("header %s", hdr)
	}
	p, err := auth.Authenticate(context.Background(), authnBearerHeader(tok))
	if err != nil {
		t.Fatal(err)
	}
	if p.AgentID != "agent-triage-02" || p.ClientID != "agent-triage-02" || p.Patient != "pat-1" ||
		strings.Join(p.Scopes, " ") != "patient/Observation.rs patient/Patient.r" || p.JTI == "" ||
		strings.Join(p.PurposeOfUse, ",") != "TREAT" {
		t.Fatalf("principal %+v", p)
	}
	if d := p.ExpiresAt.Sub(p.IssuedAt); d != 10*time.Minute {
		t.Fatalf("lifetime %s", d)
	}
	tok2, _ := MintDevToken(key, DevToken{Issuer: "http://127.0.0.1:8080/issuer", Audience: "a", Agent: "b"})
	p2, err := auth.Authenticate(context.Background(), authnBearerHeader(tok2))
	if err == nil || p2 != nil {
		t.Fatal("a token for another audience passed")
	}

	for name, dt := range map[string]DevToken{
		"no issuer":      {Audience: "a", Agent: "b"},
		"no agent":       {Issuer: "i", Audience: "a"},
		"scope with gap": {Issuer: "i", Audience: "a", Agent: "b", Scopes: []string{"a b"}},
		"negative ttl":   {Issuer: "i", Audience: "a", Agent: "b", TTL: -time.Second},
	} {
		if _, err := MintDevToken(key, dt); err == nil {
			t.Errorf("%s: minted", name)
		}
	}
	if _, err := MintDevToken(nil, DevToken{Issuer: "i", Audience: "a", Agent: "b"}); err == nil {
		t.Error("minted with a nil key")
	}
}

// devTestIssuer is a dev key and an Authenticator trusting it through a
// jwks_file, as `fhirwall demo` wires them.
func devTestIssuer(t testing.TB) (jwk.Key, *Authenticator) {
	t.Helper()
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "issuer.pem")
	if err := GenerateDevKey(keyPath); err != nil {
		t.Fatal(err)
	}
	key, err := LoadSigningKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := PublicJWKS(key)
	if err != nil {
		t.Fatal(err)
	}
	jwksPath := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksPath, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := NewAuthenticator([]IssuerSpec{{
		Issuer: "http://127.0.0.1:8080/issuer", JWKSFile: jwksPath,
		Audiences: []string{"http://127.0.0.1:8080/fhir"}, Algorithms: []string{"ES256"},
	}}, AuthOptions{Registered: func(id string) bool { return strings.HasPrefix(id, "agent-") }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	return key, auth
}

// TestDevKeyTypes: LoadSigningKey accepts the other documented key types,
// and tokens minted with them verify under the algorithm it assigned.
func TestDevKeyTypes(t *testing.T) {
	keys := authnKeys(t)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, alg string
		priv      any
	}{
		{"rsa", "RS256", keys.rsa1}, {"p384", "ES384", p384}, {"ed25519", "EdDSA", ed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			der, err := x509.MarshalPKCS8PrivateKey(tc.priv)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tc.name+".pem")
			if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
				t.Fatal(err)
			}
			key, err := LoadSigningKey(path)
			if err != nil {
				t.Fatal(err)
			}
			if alg, _ := key.Algorithm(); alg.String() != tc.alg {
				t.Fatalf("alg %v, want %s", alg, tc.alg)
			}
			jwks, _ := PublicJWKS(key)
			jwksPath := filepath.Join(dir, tc.name+".json")
			if err := os.WriteFile(jwksPath, jwks, 0o600); err != nil {
				t.Fatal(err)
			}
			a, err := NewAuthenticator([]IssuerSpec{{Issuer: "i", JWKSFile: jwksPath, Audiences: []string{"a"}, Algorithms: []string{tc.alg}}},
				AuthOptions{Registered: func(string) bool { return true }})
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			tok, err := MintDevToken(key, DevToken{Issuer: "i", Audience: "a", Agent: "agent-x"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.Authenticate(context.Background(), authnBearerHeader(tok)); err != nil {
				t.Fatal(err)
			}
		})
	}
	// Weak RSA is refused.
	der, _ := x509.MarshalPKCS8PrivateKey(keys.rsaWeak)
	path := filepath.Join(dir, "weak.pem")
	_ = os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	if _, err := LoadSigningKey(path); err == nil {
		t.Fatal("loaded a 1024-bit RSA signing key")
	}
}
