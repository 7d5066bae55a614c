package audit

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// TestIntentClosesAsTheEventItWouldHaveBeen: an intent closed without its
// completion (incomplete after a crash, or refused because it was late)
// becomes, byte for byte, the event that an intent stored as an AuditEvent
// (the earlier format) gave, for thousands of accesses of every shape.
func TestIntentClosesAsTheEventItWouldHaveBeen(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	now := t0.Add(time.Hour)
	closers := map[string]func(*fm.AuditEvent, time.Time){"incomplete": markIncomplete, "refused": markRefused}
	for i := range 3000 {
		a := randomAccess(r)
		if i == 0 {
			a = agentAccess()
		}
		ec := eventContext{source: "gw-test", serverAddr: []string{"", "10.0.0.5", "[2001:db8::5]"}[i%3]}
		id := fmt.Sprintf("ev-%d", i)
		recorded := t0.Add(time.Duration(i) * time.Millisecond)
		old := buildEvent(a, id, recorded, PhaseIntent, ec)
		oldBody, err := encodeEvent(&old)
		if err != nil {
			t.Fatal(err)
		}
		body, err := encodeIntent(a, ec)
		if err != nil {
			t.Fatal(err)
		}
		if len(body) >= len(oldBody) && i == 0 {
			t.Errorf("a read's intent is %d bytes, its AuditEvent %d", len(body), len(oldBody))
		}
		for name, closeAs := range closers {
			closed := func(b []byte) []byte {
				t.Helper()
				ev, err := intentEvent(&Record{Kind: KindIntent, EventID: id, Source: ec.source, Recorded: recorded, Body: b})
				if err != nil {
					t.Fatalf("access %d: %v\n%s", i, err, b)
				}
				closeAs(&ev, now)
				out, err := encodeEvent(&ev)
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			if want, got := closed(oldBody), closed(body); !bytes.Equal(got, want) {
				t.Fatalf("access %d closed as %s:\n got %s\nwant %s", i, name, got, want)
			}
		}
	}
}

// TestIntentFormatIsStable pins the intent document: stored intents must
// stay readable, so a change here is a new intentFormat, not an edit.
func TestIntentFormatIsStable(t *testing.T) {
	body, err := encodeIntent(agentAccess(), eventContext{source: "gw-test", serverAddr: "10.0.0.5"})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"fhirwallIntent":1,"serverAddr":"10.0.0.5","access":{"requestId":"req-0001",` +
		`"start":"2026-11-26T02:14:00Z","end":"2026-11-26T02:14:00.042Z",` +
		`"agent":{"ID":"agent-billing-07","ClientID":"billing-client","Issuer":"https://idp.example.org",` +
		`"JTI":"jti-7f3a","Roles":["billing"],"PurposeOfUse":["HPAYMT"]},"sourceAddr":"10.1.2.3:51234",` +
		`"route":"ehr","method":"GET","path":"/fhir/Patient/123","interaction":"read","resourceType":"Patient",` +
		`"resourceId":"123","decision":"allow","status":200,"patients":["123"],` +
		`"resources":[{"Type":"Patient","ID":"123","Version":"3"}],` +
		`"masks":[{"Profile":"contact-minimum","Path":"Patient.telecom","Count":2}],` +
		`"responseSha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",` +
		`"responseBytes":1234,"policyVersion":"sha256:cfg-42"}}`
	if string(body) != want {
		t.Fatalf("intent encoding changed:\n got %s\nwant %s", body, want)
	}
	a := agentAccess()
	a.Query = "_id=1&access_token=SECRET-1&acce%73s_token=SECRET-2&client_secret=SECRET-3"
	body, err = encodeIntent(a, eventContext{source: "gw-test"})
	if err != nil || bytes.Contains(body, []byte("SECRET")) {
		t.Errorf("an intent holds a credential: %s %v", body, err)
	}
	for _, bad := range []string{`{"fhirwallIntent":2,"access":{}}`, `{"fhirwallIntent":1,"access":`, `{"fhirwallIntent":1,"access":{"start":"yesterday"}}`} {
		if _, err := intentEvent(&Record{Kind: KindIntent, EventID: "ev-1", Body: []byte(bad)}); err == nil {
			t.Errorf("intent %s read without an error", bad)
		}
	}
}

// TestLegacyIntentsAreClosed: a store written before intents were compact
// holds intents that are AuditEvents; one left open by a crash is closed
// as incomplete at the next start, and the chain verifies.
func TestLegacyIntentsAreClosed(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		ctx := context.Background()
		dsn := k.dsn(t)
		openTestLog(t, k, dsn, testOptions()).Close() // creates the store
		st, err := openStore(k, dsn)
		if err != nil {
			t.Fatal(err)
		}
		ev := buildEvent(agentAccess(), "ev-legacy", t0, PhaseIntent, eventContext{source: "gw-test", serverAddr: "10.0.0.5"})
		body, err := encodeEvent(&ev)
		if err != nil {
			t.Fatal(err)
		}
		in := &Record{Kind: KindIntent, EventID: "ev-legacy", RequestID: "req-0001", Source: "gw-test", Recorded: t0, Body: body}
		if err := st.Append(ctx, []*Record{in}); err != nil {
			t.Fatal(err)
		}
		st.Close()

		l := openTestLog(t, k, dsn, testOptions())
		rec, err := l.store.Event(ctx, "ev-legacy")
		if err != nil || rec == nil {
			t.Fatalf("legacy intent not closed: %v", err)
		}
		got, err := fm.UnmarshalAuditEvent(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		if got.Outcome.Code() != "8" || deref(got.OutcomeDesc) != OutcomeIncomplete || deref(got.Agent[0].Name) != "agent-billing-07" {
			t.Errorf("closed as %s/%s by %v", got.Outcome.Code(), deref(got.OutcomeDesc), got.Agent[0].Name)
		}
		if rep, err := l.Verify(ctx); err != nil || !rep.OK {
			t.Fatalf("verify = %+v, %v", rep, err)
		}
	})
}
