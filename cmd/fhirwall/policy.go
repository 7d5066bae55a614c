package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/fhirwall/fhirwall/proxy"
)

func runPolicy(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "explain" {
		fmt.Fprintln(stderr, "Usage: fhirwall policy explain --config FILE --token FILE METHOD URL")
		return exitError{2}
	}
	fs := newFlags("policy explain", "policy explain --config FILE --token FILE METHOD URL", stderr)
	file := fs.String("config", "", "the configuration file")
	tokenFile := fs.String("token", "", "a file holding the agent's bearer token")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *file == "" || *tokenFile == "" || fs.NArg() != 2 {
		fs.Usage()
		return exitError{2}
	}
	cfg, err := loadConfigOrReport(*file, stderr)
	if err != nil {
		return err
	}
	tok, err := os.ReadFile(*tokenFile)
	if err != nil {
		return err
	}
	out, err := proxy.Explain(context.Background(), cfg, string(tok), fs.Arg(0), fs.Arg(1))
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, out)
	return nil
}
