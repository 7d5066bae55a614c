package audit

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Export writes every final AuditEvent recorded at or after since (zero:
// all) to w as NDJSON, oldest first, one event per line exactly as stored.
// It returns how many events it wrote.
func (l *Log) Export(ctx context.Context, w io.Writer, since time.Time) (int, error) {
	n := 0
	q := Query{Since: since, Limit: 500}
	if err := l.syncIndex(ctx); err != nil {
		return 0, err
	}
	for {
		recs, err := l.store.Search(ctx, q)
		if err != nil {
			return n, err
		}
		for _, r := range recs {
			line := make([]byte, 0, len(r.Body)+1)
			line = append(append(line, r.Body...), '\n')
			if _, err := w.Write(line); err != nil {
				return n, fmt.Errorf("audit: export: %w", err)
			}
			n++
			q.After = r.Seq
		}
		if len(recs) < q.Limit {
			return n, nil
		}
	}
}

// Disclosure is one access that disclosed (or may have disclosed) a
// patient's data, for an accounting of disclosures.
type Disclosure struct {
	EventID      string
	Recorded     time.Time
	AgentID      string
	ClientID     string
	Roles        []string
	PurposeOfUse []string
	Interaction  string // subtype code
	Request      string // METHOD path
	RequestID    string
	Outcome      string // 0, 4, 8, 12
	OutcomeDesc  string
	Decision     string
	// Partial is true when the access failed or was cut short after
	// forwarding: some of the data may have been sent.
	Partial   bool
	Resources []string // references of resources sent
	Masks     []MaskApplied
}

// Disclosures returns, oldest first, every access whose AuditEvent names
// the patient and that was not refused: allowed and shadow-denied accesses,
// including failed and incomplete ones (Partial). Refusals are in the
// search API, not here: they disclosed nothing.
func (l *Log) Disclosures(ctx context.Context, patientID string) ([]Disclosure, error) {
	ref, err := normPatient(patientID)
	if err != nil {
		return nil, fmt.Errorf("audit: disclosures: %w", err)
	}
	q := Query{Refs: []RefGroup{{Key: "patient", Values: []string{ref}}}, Limit: 500}
	if err := l.syncIndex(ctx); err != nil {
		return nil, err
	}
	var out []Disclosure
	for {
		recs, err := l.store.Search(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			q.After = r.Seq
			ev, err := fm.UnmarshalAuditEvent(r.Body)
			if err != nil {
				return nil, fmt.Errorf("audit: event %s: %w", r.EventID, err)
			}
			d := disclosureOf(&ev, r)
			if d.Decision == DecisionDeny {
				continue
			}
			out = append(out, d)
		}
		if len(recs) < q.Limit {
			return out, nil
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func disclosureOf(ev *fm.AuditEvent, r *Record) Disclosure {
	d := Disclosure{EventID: r.EventID, Recorded: r.Recorded, RequestID: r.RequestID}
	if len(ev.Subtype) > 0 {
		d.Interaction = deref(ev.Subtype[0].Code)
	}
	if ev.Outcome != nil {
		d.Outcome = ev.Outcome.Code()
	}
	d.OutcomeDesc = deref(ev.OutcomeDesc)
	d.Partial = d.Outcome == "8" || d.Outcome == "12"
	for _, a := range ev.Agent {
		if !a.Requestor {
			continue
		}
		d.AgentID = deref(a.Name)
		d.ClientID = deref(a.AltId)
		for _, r := range a.Role {
			if len(r.Coding) > 0 {
				d.Roles = append(d.Roles, deref(r.Coding[0].Code))
			}
		}
		for _, p := range a.PurposeOfUse {
			if len(p.Coding) > 0 {
				d.PurposeOfUse = append(d.PurposeOfUse, deref(p.Coding[0].Code))
			}
		}
	}
	for _, e := range ev.Entity {
		for _, x := range e.Extension {
			if x.Url == ExtDisclosed && x.ValueBoolean != nil && *x.ValueBoolean && e.What != nil {
				d.Resources = append(d.Resources, deref(e.What.Reference))
			}
		}
	}
	var method, path string
	for _, x := range ev.Extension {
		switch x.Url {
		case ExtDecision:
			d.Decision = deref(x.ValueCode)
		case ExtHTTP:
			for _, s := range x.Extension {
				switch s.Url {
				case "method":
					method = deref(s.ValueCode)
				case "path":
					path = deref(s.ValueString)
				}
			}
		case ExtMask:
			var m MaskApplied
			for _, s := range x.Extension {
				switch s.Url {
				case "profile":
					m.Profile = deref(s.ValueString)
				case "path":
					m.Path = deref(s.ValueString)
				case "count":
					if s.ValueInteger != nil {
						m.Count = *s.ValueInteger
					}
				}
			}
			d.Masks = append(d.Masks, m)
		}
	}
	d.Request = strings.TrimSpace(method + " " + path)
	return d
}

// WriteDisclosureReport writes a human-readable accounting of disclosures
// of one patient: who, when, for what purpose, what was sent and what was
// masked. It is the output of `fhirwall audit disclosures --patient ID`.
func WriteDisclosureReport(w io.Writer, patientID string, ds []Disclosure) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Accounting of disclosures for Patient/%s: %d access(es)\n\n", strings.TrimPrefix(patientID, "Patient/"), len(ds))
	for i, d := range ds {
		purpose := strings.Join(d.PurposeOfUse, ", ")
		if purpose == "" {
			purpose = "(not stated)"
		}
		status := "complete"
		if d.Partial {
			status = "partial or failed (" + d.OutcomeDesc + ")"
		} else if d.Outcome != "0" {
			status = "refused by upstream (" + d.OutcomeDesc + ")"
		}
		if d.Decision == DecisionShadowDeny {
			status += "; policy would have denied (shadow mode)"
		}
		fmt.Fprintf(tw, "%d.\twhen\t%s\n", i+1, d.Recorded.UTC().Format(time.RFC3339))
		client := d.ClientID
		if client == "" {
			client = "the agent itself" // client_id equal to the agent id is not repeated
		}
		fmt.Fprintf(tw, "\twho\t%s (client %s; roles %s)\n", d.AgentID, client, orNone(strings.Join(d.Roles, ", ")))
		fmt.Fprintf(tw, "\tpurpose\t%s\n", purpose)
		fmt.Fprintf(tw, "\twhat\t%s %s\n", d.Interaction, d.Request)
		fmt.Fprintf(tw, "\tresources\t%s\n", orNone(strings.Join(d.Resources, ", ")))
		var masks []string
		for _, m := range d.Masks {
			masks = append(masks, fmt.Sprintf("%s: %s (%d)", m.Profile, m.Path, m.Count))
		}
		fmt.Fprintf(tw, "\tmasked\t%s\n", orNone(strings.Join(masks, "; ")))
		fmt.Fprintf(tw, "\tstatus\t%s\n", status)
		fmt.Fprintf(tw, "\tevent\tAuditEvent/%s (request %s)\n\n", d.EventID, orNone(d.RequestID))
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
