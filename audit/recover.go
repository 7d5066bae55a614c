package audit

import (
	"context"
	"fmt"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// closeUnfinished closes this source's intents that have no completion
// (the process died mid-request) with an event of outcome 8 (serious
// failure: terminated prematurely) and outcomeDesc "incomplete". It runs
// before the writer starts, so nothing races it in this process.
func (l *Log) closeUnfinished(ctx context.Context) error {
	open, err := l.store.Unfinished(ctx, l.opts.Source)
	if err != nil {
		return err
	}
	if len(open) == 0 {
		return nil
	}
	now := l.opts.now().UTC()
	var recs []*Record
	for _, in := range open {
		ev, err := intentEvent(in)
		if err != nil {
			return fmt.Errorf("audit: intent %d unreadable: %w", in.Seq, err)
		}
		markIncomplete(&ev, now)
		body, err := encodeEvent(&ev)
		if err != nil {
			return fmt.Errorf("audit: intent %d: %w", in.Seq, err)
		}
		recs = append(recs, &Record{Kind: KindEvent, EventID: in.EventID, RequestID: in.RequestID,
			Source: l.opts.Source, Recorded: now, Body: body, Keys: indexKeys(refsOf(&ev))})
	}
	if err := l.store.Append(ctx, recs); err != nil {
		return fmt.Errorf("audit: closing %d incomplete intents: %w", len(recs), err)
	}
	return nil
}

func markIncomplete(ev *fm.AuditEvent, now time.Time) {
	closeIntent(ev, now, fm.AuditEventOutcome8, OutcomeIncomplete, PhaseIncomplete)
}

// markRefused closes an intent whose access was refused with 503 because
// the intent was not durable in time.
func markRefused(ev *fm.AuditEvent, now time.Time) {
	closeIntent(ev, now, fm.AuditEventOutcome12, "audit-unavailable", PhaseComplete)
	for i := range ev.Extension {
		if ev.Extension[i].Url == ExtDecision {
			ev.Extension[i].ValueCode = ptr(DecisionDeny)
		}
	}
}

func closeIntent(ev *fm.AuditEvent, now time.Time, oc fm.AuditEventOutcome, desc, phase string) {
	ev.Outcome = &oc
	ev.OutcomeDesc = ptr(desc)
	ev.Recorded = ts(now)
	ev.Meta = nil
	for i := range ev.Extension {
		if ev.Extension[i].Url == ExtPhase {
			ev.Extension[i].ValueCode = ptr(phase)
		}
	}
}
