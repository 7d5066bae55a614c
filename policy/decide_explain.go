package policy

import (
	"fmt"
	"strings"

	"github.com/fhirwall/fhirwall/fhir"
)

// Explain renders a decision for a person (`fhirwall policy explain`): the
// verdict and its reason code, the request as classified, the scopes that
// matched, the narrowing added, the response check and, for a batch or
// transaction, every entry. req may be nil. The text holds scope names,
// types and parameter names, never PHI from a body.
func Explain(d Decision, req *fhir.Request) string {
	var b strings.Builder
	explainInto(&b, d, req, "")
	return b.String()
}

func explainInto(b *strings.Builder, d Decision, req *fhir.Request, indent string) {
	line := func(format string, args ...any) {
		b.WriteString(indent)
		fmt.Fprintf(b, format, args...)
		b.WriteByte('\n')
	}
	if d.Allow {
		line("decision: ALLOW")
	} else {
		line("decision: DENY (%s, HTTP %d): %s", d.Reason, d.Reason.Status(), d.Detail)
		if d.NotFoundOnRefusal {
			line("answered as: 404 %s (no existence oracle)", fhir.ReasonNotFound)
		}
	}
	if req != nil {
		what := string(req.Interaction)
		if req.ResourceType != "" {
			what += " " + req.ResourceType
		}
		if req.ID != "" {
			what += "/" + req.ID
		}
		if req.CompartmentType != "" {
			what += fmt.Sprintf(" in compartment %s/%s", req.CompartmentType, req.CompartmentID)
		}
		if req.Operation != "" {
			what += fmt.Sprintf(" $%s (%s level)", req.Operation, req.OperationLevel)
		}
		if req.Conditional {
			what += " (conditional)"
		}
		line("interaction: %s", what)
		if pulls := describePullIns(req.PullIns); pulls != "" {
			line("pulls in: %s", pulls)
		}
	}
	if d.Patient != "" {
		line("patient context: Patient/%s", d.Patient)
	}
	if len(d.Matched) > 0 {
		line("granted by: %s", strings.Join(d.Matched, ", "))
	}
	if len(d.Narrowing) > 0 {
		parts := make([]string, len(d.Narrowing))
		for i, p := range d.Narrowing {
			parts[i] = p.Name + "=" + p.Value
		}
		line("narrowing added: %s", strings.Join(parts, "&"))
	}
	if d.Allow {
		if d.Check != nil {
			line("response check: %s", d.Check)
		}
		if d.Prefetch {
			line("prefetch: the current resource is read and checked before the write is forwarded")
		}
		if d.HideTotal {
			line("Bundle.total is removed (the check may drop matches)")
		}
		if d.NotFoundOnRefusal {
			line("a refused or missing resource is answered 404 not-found alike")
		}
	}
	for i, ed := range d.EntryDecisions {
		var er *fhir.Request
		if req != nil && i < len(req.Entries) {
			er = req.Entries[i].Request
		}
		line("entry %d:", i)
		explainInto(b, ed, er, indent+"  ")
	}
}

func describePullIns(pi fhir.PullIns) string {
	var parts []string
	for _, inc := range pi.Include {
		parts = append(parts, "_include="+includeString(inc))
	}
	for _, inc := range pi.RevInclude {
		parts = append(parts, "_revinclude="+includeString(inc))
	}
	for _, h := range pi.Has {
		hops := make([]string, len(h.Hops))
		for i, hop := range h.Hops {
			hops[i] = hop.Type + ":" + hop.Ref
		}
		parts = append(parts, "_has via "+strings.Join(hops, " > "))
	}
	for _, c := range pi.Chained {
		parts = append(parts, "chain "+c.Key)
	}
	if len(pi.Types) > 0 {
		parts = append(parts, "_type="+strings.Join(pi.Types, ","))
	}
	if pi.Contained != "" {
		parts = append(parts, "_contained="+pi.Contained)
	}
	if pi.Summary != "" {
		parts = append(parts, "_summary="+pi.Summary)
	}
	return strings.Join(parts, "; ")
}

func includeString(inc fhir.Include) string {
	s := "*"
	if inc.Source != "" {
		s = inc.Source + ":" + inc.Param
		if inc.Target != "" {
			s += ":" + inc.Target
		}
	}
	if inc.Iterate {
		s += " (iterate)"
	}
	return s
}
