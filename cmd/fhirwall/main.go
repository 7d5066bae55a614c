// Command fhirwall is the access boundary between AI agents and the FHIR
// servers and JSON/REST services that hold patient data. Run
// `fhirwall help` for the commands.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// command is one sub-command of the binary.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"serve", "run the gateway: serve --config FILE", runServe},
	{"demo", "run everything on embedded defaults: demo [--listen ADDR] [--data-dir DIR]", runDemo},
	{"check", "validate a configuration: check --config FILE", runCheck},
	{"token", "mint a development token: token --key FILE --agent ID --scope S", runToken},
	{"policy", "policy explain --config FILE --token FILE METHOD URL", runPolicy},
	{"audit", "audit verify|export|disclosures --config FILE", runAudit},
	{"admin", "admin revoke|restore|list --config FILE --agent ID [--jti ID]", runAdmin},
}

// exitError carries a process exit code; its message has been printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(args[1:], stdout, stderr)
			var ee exitError
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.As(err, &ee):
				return ee.code
			default:
				fmt.Fprintf(stderr, "fhirwall %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "fhirwall: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "fhirwall: the access boundary between AI agents and patient data")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: fhirwall <command> [flags]   (each command takes --help)")
	fmt.Fprintln(w)
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = fmt.Sprintf("  %-8s %s", c.name, c.summary)
	}
	sort.Strings(names)
	fmt.Fprintln(w, strings.Join(names, "\n"))
}

// newFlags returns a FlagSet that prints its usage to stderr and returns
// errors instead of exiting.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("fhirwall "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: fhirwall %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, " ") }

// Set adds one value; a value with spaces adds each word, so that
// --scope "a b" and --scope a --scope b mean the same.
func (s *stringList) Set(v string) error {
	*s = append(*s, strings.Fields(v)...)
	return nil
}
