package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fhirwall/fhirwall/audit"
)

func runAudit(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "Usage: fhirwall audit verify|export|disclosures --config FILE")
		return exitError{2}
	}
	sub, args := args[0], args[1:]
	fs := newFlags("audit "+sub, "audit "+sub+" --config FILE", stderr)
	file := fs.String("config", "", "the configuration file (its audit.store is read)")
	var since *string
	var patient *string
	var asJSON *bool
	switch sub {
	case "verify":
		asJSON = fs.Bool("json", false, "print the report as JSON")
	case "export":
		since = fs.String("since", "", "only events recorded at or after this time (RFC 3339)")
		fs.String("format", "ndjson", "output format (ndjson)")
	case "disclosures":
		patient = fs.String("patient", "", "the patient id (123 or Patient/123)")
	default:
		fmt.Fprintf(stderr, "fhirwall audit: unknown subcommand %q (verify, export, disclosures)\n", sub)
		return exitError{2}
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || (patient != nil && *patient == "") {
		fs.Usage()
		return exitError{2}
	}
	cfg, err := loadConfigOrReport(*file, stderr)
	if err != nil {
		return err
	}
	ctx := context.Background()
	// Read-only: safe beside a running gateway; closes no intents and
	// creates no key.
	log, err := audit.Open(ctx, resolveStore(cfg), audit.Options{
		ReadOnly:          true,
		CheckpointKeyFile: resolveFile(cfg, cfg.Audit.CheckpointKeyFile),
	})
	if err != nil {
		return fmt.Errorf("open audit store: %w", err)
	}
	defer log.Close()
	switch sub {
	case "verify":
		rep, err := log.Verify(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			_ = json.NewEncoder(stdout).Encode(rep)
		} else {
			printVerify(stdout, rep)
		}
		if !rep.OK {
			return exitError{1}
		}
	case "export":
		var t time.Time
		if *since != "" {
			if t, err = time.Parse(time.RFC3339, *since); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
		}
		w := &progressWriter{w: stdout, progress: stderr, terminal: isTerminal(os.Stderr)}
		n, err := log.Export(ctx, w, t)
		w.done()
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "exported %d events\n", n)
	case "disclosures":
		ds, err := log.Disclosures(ctx, *patient)
		if err != nil {
			return err
		}
		return audit.WriteDisclosureReport(stdout, *patient, ds)
	}
	return nil
}

func printVerify(w io.Writer, rep audit.VerifyReport) {
	if rep.OK {
		fmt.Fprintf(w, "audit chain OK: %d records, head seq %d\n", rep.Records, rep.Head.Seq)
	} else {
		fmt.Fprintf(w, "audit chain BROKEN after %d records\n", rep.Records)
	}
	if rep.Problem != nil {
		b, _ := json.Marshal(rep.Problem)
		fmt.Fprintf(w, "first problem: %s\n", b)
	}
	if rep.LastGoodCheckpoint != nil {
		b, _ := json.Marshal(rep.LastGoodCheckpoint)
		fmt.Fprintf(w, "last good checkpoint: %s\n", b)
	} else {
		fmt.Fprintln(w, "last good checkpoint: none")
	}
	fmt.Fprintf(w, "checkpoints: %d; records after the last good checkpoint (unanchored): %d\n", rep.Checkpoints, rep.Unanchored)
	if rep.Unindexed > 0 {
		// Not a fault: the index follows the chain, and a gateway indexes
		// what is left when it starts.
		fmt.Fprintf(w, "events not yet in the search index: %d (indexed by the next gateway start)\n", rep.Unindexed)
	}
}

// progressWriter counts exported lines and, on a terminal, shows the count.
type progressWriter struct {
	w        io.Writer
	progress io.Writer
	terminal bool
	lines    int
	last     time.Time
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	for _, c := range b[:n] {
		if c == '\n' {
			p.lines++
		}
	}
	if p.terminal && time.Since(p.last) > 200*time.Millisecond {
		p.last = time.Now()
		fmt.Fprintf(p.progress, "\rexporting… %d events", p.lines)
	}
	return n, err
}

func (p *progressWriter) done() {
	if p.terminal {
		fmt.Fprint(p.progress, "\r\033[K")
	}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
