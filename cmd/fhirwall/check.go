package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/fhirwall/fhirwall/policy"
	"github.com/fhirwall/fhirwall/proxy"
)

func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", "check --config FILE", stderr)
	file := fs.String("config", "", "the configuration file to validate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		fs.Usage()
		return exitError{2}
	}
	cfg, problems := loadConfig(*file)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, p.String())
		}
		fmt.Fprintf(stderr, "%d problem(s) in %s\n", len(problems), *file)
		return exitError{1}
	}
	fmt.Fprintf(stdout, "%s: ok (%d agents, %d roles, %d routes, policy %s)\n",
		*file, len(cfg.Agents), len(cfg.Roles), len(cfg.Routes), cfg.Version)
	return nil
}

// loadConfig loads and fully checks a configuration: policy's own
// validation, then what needs the other packages (scopes, mask paths,
// credentials). It returns every problem found.
func loadConfig(file string) (*policy.Config, policy.Problems) {
	cfg, err := policy.Load(file)
	if err != nil {
		var ps policy.Problems
		if errors.As(err, &ps) {
			return nil, ps
		}
		return nil, policy.Problems{{File: file, Msg: err.Error()}}
	}
	if ps := proxy.Check(cfg); len(ps) > 0 {
		return nil, ps
	}
	return cfg, nil
}

// loadConfigOrReport loads file for a command that needs a valid
// configuration: on problems it prints each to stderr and returns exit 1.
func loadConfigOrReport(file string, stderr io.Writer) (*policy.Config, error) {
	cfg, problems := loadConfig(file)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, p.String())
		}
		return nil, exitError{1}
	}
	return cfg, nil
}
