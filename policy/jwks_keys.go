package policy

// This file decides which JWKS entries may verify which algorithms. The
// answer depends on the key alone (its type, curve, size, "alg", "use" and
// "key_ops") intersected with the issuer's allow-list; the token's header
// only chooses among what is left.

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// authnMinRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const authnMinRSABits = 2048

// authnKey is one public verification key and the algorithms it may
// verify.
type authnKey struct {
	kid    string
	hasKID bool
	raw    any // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	algs   []jwa.SignatureAlgorithm
}

func (k authnKey) accepts(alg jwa.SignatureAlgorithm) bool {
	return slices.Contains(k.algs, alg)
}

// authnUsableKey returns the verification form of key, or why it cannot
// verify anything under allow.
func authnUsableKey(key jwk.Key, allow []jwa.SignatureAlgorithm) (authnKey, error) {
	if jwk.IsUnsupportedKey(key) {
		return authnKey{}, errors.New("unsupported key type")
	}
	if use, ok := key.KeyUsage(); ok && use != "sig" {
		return authnKey{}, fmt.Errorf("key use %q is not sig", use)
	}
	if ops, ok := key.KeyOps(); ok && !slices.Contains(ops, jwk.KeyOpVerify) {
		return authnKey{}, errors.New("key_ops does not include verify")
	}
	// A set that carries private material is still used for its public
	// half only; verification never needs more.
	pub, err := jwk.PublicKeyOf(key)
	if err != nil {
		return authnKey{}, fmt.Errorf("public key: %w", err)
	}
	var raw any
	if err := jwk.Export(pub, &raw); err != nil {
		return authnKey{}, fmt.Errorf("export: %w", err)
	}
	fits, err := authnAlgsForKey(raw)
	if err != nil {
		return authnKey{}, err
	}
	k := authnKey{raw: raw}
	k.kid, k.hasKID = key.KeyID()
	if ka, ok := key.Algorithm(); ok {
		// A key that names its algorithm verifies that one only, and only
		// when it fits the key type and the allow-list.
		sa, isSig := ka.(jwa.SignatureAlgorithm)
		if !isSig || !slices.Contains(fits, sa) || !slices.Contains(allow, sa) {
			return authnKey{}, fmt.Errorf("key alg %q does not fit the key or the allow-list", ka.String())
		}
		k.algs = []jwa.SignatureAlgorithm{sa}
		return k, nil
	}
	for _, a := range fits {
		if slices.Contains(allow, a) {
			k.algs = append(k.algs, a)
		}
	}
	if len(k.algs) == 0 {
		return authnKey{}, errors.New("no allowed algorithm fits the key type")
	}
	return k, nil
}

// authnAlgsForKey lists the algorithms RFC 7518 and RFC 8037 pair with a
// public key. Symmetric keys fit nothing: they are never verification keys
// here.
func authnAlgsForKey(raw any) ([]jwa.SignatureAlgorithm, error) {
	switch k := raw.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < authnMinRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is shorter than %d", k.N.BitLen(), authnMinRSABits)
		}
		return []jwa.SignatureAlgorithm{jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256(), jwa.PS384(), jwa.PS512()}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return []jwa.SignatureAlgorithm{jwa.ES256()}, nil
		case elliptic.P384():
			return []jwa.SignatureAlgorithm{jwa.ES384()}, nil
		case elliptic.P521():
			return []jwa.SignatureAlgorithm{jwa.ES512()}, nil
		}
		return nil, errors.New("unsupported elliptic curve")
	case ed25519.PublicKey:
		return []jwa.SignatureAlgorithm{jwa.EdDSA(), jwa.EdDSAEd25519()}, nil
	}
	return nil, fmt.Errorf("key type %T cannot verify signatures", raw)
}
