package policy

// This file is the development token issuer behind `fhirwall token` and
// `fhirwall demo`: a signing key on disk, its public JWKS, and access
// tokens shaped like those of a SMART Backend Services authorization
// server (RFC 9068). It is for development and demos; production agents get
// their tokens from a real IdP.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// devDefaultTTL is the lifetime of a dev token whose TTL is zero.
const devDefaultTTL = time.Hour

// GenerateDevKey writes a new ES256 (P-256) private key to path as a PEM
// "PRIVATE KEY" (PKCS#8) block, readable by the owner only (0600). It never
// overwrites: an existing file is an error wrapping fs.ErrExist, so a demo
// restart keeps the key its earlier tokens were signed with.
func GenerateDevKey(path string) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("devtoken: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("devtoken: encode key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("devtoken: create key file: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("devtoken: write key file: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("devtoken: write key file: %w", err)
	}
	return nil
}

// LoadSigningKey reads a PEM PKCS#8 private key (as GenerateDevKey writes;
// also RSA of 2048 bits or more, P-384 and Ed25519 keys) and returns it as a
// JWK whose "kid" is its RFC 7638 thumbprint (SHA-256, base64url), whose
// "alg" is the algorithm the key type implies (ES256, ES384, RS256 or
// EdDSA) and whose "use" is "sig".
func LoadSigningKey(path string) (jwk.Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("devtoken: read key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("devtoken: %s holds no PEM PRIVATE KEY (PKCS#8) block", path)
	}
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("devtoken: parse key: %w", err)
	}
	var alg jwa.SignatureAlgorithm
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			alg = jwa.ES256()
		case elliptic.P384():
			alg = jwa.ES384()
		default:
			return nil, errors.New("devtoken: unsupported elliptic curve (use P-256 or P-384)")
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() < authnMinRSABits {
			return nil, fmt.Errorf("devtoken: RSA key of %d bits is too short", k.N.BitLen())
		}
		alg = jwa.RS256()
	case ed25519.PrivateKey:
		alg = jwa.EdDSA()
	default:
		return nil, fmt.Errorf("devtoken: unsupported key type %T", priv)
	}
	key, err := jwk.Import(priv)
	if err != nil {
		return nil, fmt.Errorf("devtoken: import key: %w", err)
	}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devtoken: thumbprint: %w", err)
	}
	for name, v := range map[string]any{
		jwk.KeyIDKey:     base64.RawURLEncoding.EncodeToString(tp),
		jwk.AlgorithmKey: alg,
		jwk.KeyUsageKey:  jwk.ForSignature,
	} {
		if err := key.Set(name, v); err != nil {
			return nil, fmt.Errorf("devtoken: set %s: %w", name, err)
		}
	}
	return key, nil
}

// PublicJWKS returns the JWK Set ({"keys":[...]}) holding the public half
// of key, with its kid, alg and use, for a jwks_file or a JWKS endpoint.
// No private member is ever included.
func PublicJWKS(key jwk.Key) ([]byte, error) {
	if key == nil {
		return nil, errors.New("devtoken: nil key")
	}
	pub, err := jwk.PublicKeyOf(key)
	if err != nil {
		return nil, fmt.Errorf("devtoken: public key: %w", err)
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, fmt.Errorf("devtoken: key set: %w", err)
	}
	out, err := json.Marshal(set)
	if err != nil {
		return nil, fmt.Errorf("devtoken: encode key set: %w", err)
	}
	return out, nil
}

// DevToken describes a development access token.
type DevToken struct {
	Issuer   string // "iss", required
	Audience string // "aud", required
	Agent    string // "sub", the agent id, required
	// Scopes become the space-separated "scope" claim; a scope may not
	// contain whitespace.
	Scopes  []string
	Patient string        // "patient", omitted when empty
	TTL     time.Duration // lifetime; zero means one hour
	// ClientID is the "client_id" claim; empty means Agent.
	ClientID     string
	PurposeOfUse []string // "purpose_of_use", omitted when empty
}

// devClaims is the payload MintDevToken signs.
type devClaims struct {
	Iss          string   `json:"iss"`
	Sub          string   `json:"sub"`
	Aud          string   `json:"aud"`
	ClientID     string   `json:"client_id"`
	Scope        string   `json:"scope,omitempty"`
	Patient      string   `json:"patient,omitempty"`
	PurposeOfUse []string `json:"purpose_of_use,omitempty"`
	JTI          string   `json:"jti"`
	Iat          int64    `json:"iat"`
	Exp          int64    `json:"exp"`
}

// MintDevToken signs an RFC 9068 access token (typ "at+jwt") with key,
// which must carry "alg" and "kid" (LoadSigningKey sets both). Claims: iss,
// sub = Agent, aud, client_id, scope, optional patient and purpose_of_use,
// a random jti, iat = now and exp = now + TTL.
func MintDevToken(key jwk.Key, t DevToken) (string, error) {
	if key == nil {
		return "", errors.New("devtoken: nil key")
	}
	if t.Issuer == "" || t.Audience == "" || t.Agent == "" {
		return "", errors.New("devtoken: issuer, audience and agent are required")
	}
	for _, s := range t.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return "", fmt.Errorf("devtoken: scope %q is empty or contains whitespace", s)
		}
	}
	if t.TTL < 0 {
		return "", errors.New("devtoken: negative TTL")
	}
	if t.TTL == 0 {
		t.TTL = devDefaultTTL
	}
	ka, ok := key.Algorithm()
	if !ok {
		return "", errors.New("devtoken: key has no alg")
	}
	alg, ok := ka.(jwa.SignatureAlgorithm)
	if !ok {
		return "", fmt.Errorf("devtoken: key alg %s is not a signature algorithm", ka)
	}
	kid, ok := key.KeyID()
	if !ok {
		return "", errors.New("devtoken: key has no kid")
	}
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("devtoken: jti: %w", err)
	}
	now := time.Now()
	c := devClaims{
		Iss:          t.Issuer,
		Sub:          t.Agent,
		Aud:          t.Audience,
		ClientID:     t.ClientID,
		Scope:        strings.Join(t.Scopes, " "),
		Patient:      t.Patient,
		PurposeOfUse: t.PurposeOfUse,
		JTI:          base64.RawURLEncoding.EncodeToString(jti[:]),
		Iat:          now.Unix(),
		Exp:          now.Add(t.TTL).Unix(),
	}
	if c.ClientID == "" {
		c.ClientID = t.Agent
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("devtoken: encode claims: %w", err)
	}
	hdr := jws.NewHeaders()
	for name, v := range map[string]any{jws.TypeKey: "at+jwt", jws.KeyIDKey: kid} {
		if err := hdr.Set(name, v); err != nil {
			return "", fmt.Errorf("devtoken: header %s: %w", name, err)
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("devtoken: sign: %w", err)
	}
	return string(signed), nil
}
