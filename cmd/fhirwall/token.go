package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/fhirwall/fhirwall/policy"
)

func runToken(args []string, stdout, stderr io.Writer) error {
	fset := newFlags("token", "token --key FILE --agent ID --scope S [--patient ID] [--ttl D] [--issuer URL --audience URL]", stderr)
	key := fset.String("key", "", "ES256 private key (PEM); created with --new-key")
	newKey := fset.Bool("new-key", false, "create the key file if it does not exist, and print its JWKS to stderr")
	agent := fset.String("agent", "", "the agent id (sub)")
	var scopes, pou stringList
	fset.Var(&scopes, "scope", "a scope to grant (repeatable, or space separated)")
	fset.Var(&pou, "purpose", "purpose of use code, e.g. TREAT or HPAYMT (repeatable)")
	patient := fset.String("patient", "", "patient context (the patient claim) for patient/ scopes")
	ttl := fset.Duration("ttl", time.Hour, "lifetime")
	issuer := fset.String("issuer", "http://127.0.0.1:8080/demo-issuer", "iss")
	audience := fset.String("audience", "http://127.0.0.1:8080/fhir", "aud")
	clientID := fset.String("client-id", "", "client_id (default: the agent id)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if *key == "" || *agent == "" || len(scopes) == 0 {
		fset.Usage()
		return exitError{2}
	}
	if *newKey {
		if _, err := os.Stat(*key); errors.Is(err, fs.ErrNotExist) {
			if err := policy.GenerateDevKey(*key); err != nil {
				return err
			}
		}
	}
	k, err := policy.LoadSigningKey(*key)
	if err != nil {
		return err
	}
	if *newKey {
		jwks, err := policy.PublicJWKS(k)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "%s\n", jwks)
	}
	tok, err := policy.MintDevToken(k, policy.DevToken{
		Issuer: *issuer, Audience: *audience, Agent: *agent, Scopes: scopes,
		Patient: *patient, TTL: *ttl, ClientID: *clientID, PurposeOfUse: pou,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
