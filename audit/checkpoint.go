package audit

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Checkpoints are compact JWS (RFC 7515) signed with Ed25519 ("EdDSA",
// RFC 8037). The header carries the key's RFC 7638 thumbprint as kid; the
// verifier never trusts a key from the header, only the configured one.

type cpHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

type cpPayload struct {
	Seq    int64  `json:"seq"`
	Hash   string `json:"hash"`
	Iat    int64  `json:"iat"`
	Source string `json:"src"`
}

const cpType = "fhirwall-audit-checkpoint+jws"

var b64 = base64.RawURLEncoding.Strict()

// signer holds the checkpoint key.
type signer struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	kid  string
}

func newSigner(k crypto.Signer) (*signer, error) {
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit: checkpoint key must be Ed25519, got %T", k)
	}
	pub := priv.Public().(ed25519.PublicKey)
	// RFC 7638 thumbprint of the OKP JWK.
	jwk := `{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(jwk))
	return &signer{priv: priv, pub: pub, kid: b64.EncodeToString(sum[:])}, nil
}

func (s *signer) sign(seq int64, hash, source string, at time.Time) Checkpoint {
	h, _ := json.Marshal(cpHeader{Alg: "EdDSA", Typ: cpType, Kid: s.kid})
	p, _ := json.Marshal(cpPayload{Seq: seq, Hash: hash, Iat: at.Unix(), Source: source})
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	sig := ed25519.Sign(s.priv, []byte(input))
	return Checkpoint{Seq: seq, Hash: hash, Created: at, JWS: input + "." + b64.EncodeToString(sig)}
}

// verifyCheckpoint checks cp's signature with pub and that its payload
// states cp's own Seq and Hash (the table columns cannot be edited apart
// from the signed payload).
func verifyCheckpoint(pub ed25519.PublicKey, cp Checkpoint) error {
	parts := strings.Split(cp.JWS, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS")
	}
	hb, err := b64.DecodeString(parts[0])
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	var h cpHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if h.Alg != "EdDSA" || h.Typ != cpType {
		return fmt.Errorf("unexpected alg %q / typ %q", h.Alg, h.Typ)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	if !ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig) {
		return errors.New("bad signature")
	}
	pb, err := b64.DecodeString(parts[1])
	if err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	var p cpPayload
	if err := json.Unmarshal(pb, &p); err != nil {
		return fmt.Errorf("payload: %w", err)
	}
	if p.Seq != cp.Seq || p.Hash != cp.Hash {
		return errors.New("payload does not match the stored seq/hash")
	}
	return nil
}

// LoadKey reads an Ed25519 private key (PKCS #8 PEM) from path; a missing
// file is an error.
func LoadKey(path string) (crypto.Signer, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("audit: checkpoint key: %w", err)
	}
	return LoadOrCreateKey(path)
}

// LoadOrCreateKey reads an Ed25519 private key (PKCS #8 PEM) from path,
// creating one with mode 0600 if the file does not exist.
func LoadOrCreateKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, fmt.Errorf("audit: generate checkpoint key: %w", gerr)
		}
		der, merr := x509.MarshalPKCS8PrivateKey(priv)
		if merr != nil {
			return nil, fmt.Errorf("audit: encode checkpoint key: %w", merr)
		}
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		f, ferr := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if ferr != nil {
			return nil, fmt.Errorf("audit: create checkpoint key: %w", ferr)
		}
		if _, werr := f.Write(pemBytes); werr != nil {
			f.Close()
			return nil, fmt.Errorf("audit: write checkpoint key: %w", werr)
		}
		if serr := f.Sync(); serr != nil {
			f.Close()
			return nil, fmt.Errorf("audit: write checkpoint key: %w", serr)
		}
		if cerr := f.Close(); cerr != nil {
			return nil, fmt.Errorf("audit: write checkpoint key: %w", cerr)
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: read checkpoint key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("audit: checkpoint key %s: not PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint key %s: %w", path, err)
	}
	s, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit: checkpoint key %s: want Ed25519, got %T", path, k)
	}
	return s, nil
}
