package audit

import (
	"bufio"
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

func TestExportNDJSON(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		opts := testOptions()
		opts.now = (&fakeClock{t: t0}).now
		tl := openTestLog(t, k, "", opts)
		ctx := context.Background()
		recordN(t, tl.Log, 7, nil)
		p, err := tl.Intent(ctx, agentAccess()) // an open intent is not an event
		if err != nil {
			t.Fatal(err)
		}
		_ = p
		var buf bytes.Buffer
		n, err := tl.Export(ctx, &buf, time.Time{})
		if err != nil || n != 7 {
			t.Fatalf("export all: %d, %v", n, err)
		}
		sc := bufio.NewScanner(&buf)
		sc.Buffer(nil, 1<<20)
		var lines int
		for sc.Scan() {
			if _, err := fm.UnmarshalAuditEvent(sc.Bytes()); err != nil {
				t.Fatalf("line %d: %v", lines+1, err)
			}
			lines++
		}
		if lines != 7 {
			t.Errorf("%d lines", lines)
		}
		// Records are at 02:16..02:22; since 02:20 leaves three.
		buf.Reset()
		n, err = tl.Export(ctx, &buf, t0.Add(6*time.Minute))
		if err != nil || n != 3 {
			t.Errorf("export since: %d, %v", n, err)
		}
	})
}

func TestDisclosures(t *testing.T) {
	opts := testOptions()
	opts.now = (&fakeClock{t: t0}).now
	tl := openTestLog(t, sqliteKind, "", opts)
	ctx := context.Background()
	edits := []func(a *Access){
		func(a *Access) {}, // read of Patient/123, masked
		func(a *Access) { // refused: disclosed nothing
			a.RequestID, a.Decision, a.Reason, a.Status, a.Resources, a.Masks = "req-denied", DecisionDeny, "compartment-violation", 403, nil, nil
		},
		func(a *Access) { // a search that returned two of the patient's observations
			a.RequestID, a.Interaction, a.Path, a.Query = "req-search", "search-type", "/fhir/Observation", "patient=123"
			a.ResourceType, a.ResourceID = "Observation", ""
			a.Resources = []ResourceRef{{"Observation", "o1", "2"}, {"Observation", "o2", "1"}}
			a.Agent = Agent{ID: "agent-care-02", ClientID: "care-client", Roles: []string{"care"}, PurposeOfUse: []string{"TREAT"}}
			a.Masks = nil
		},
		func(a *Access) { // another patient
			a.RequestID, a.Patients, a.ResourceID = "req-other", []string{"999"}, "999"
			a.Resources = []ResourceRef{{"Patient", "999", "1"}}
		},
		func(a *Access) { // shadow mode: policy would deny, data flowed
			a.RequestID, a.Decision = "req-shadow", DecisionShadowDeny
		},
		func(a *Access) { // client went away mid-stream
			a.RequestID, a.Failed, a.FailureDetail = "req-cut", true, "client disconnected"
		},
	}
	for _, e := range edits {
		a := agentAccess()
		e(a)
		if err := tl.Record(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := tl.Disclosures(ctx, "Patient/123")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.RequestID)
	}
	if want := []string{"req-0001", "req-search", "req-shadow", "req-cut"}; !slices.Equal(ids, want) {
		t.Fatalf("disclosures %v, want %v", ids, want)
	}
	for i := range ds {
		ds[i].EventID = "ev-" + ds[i].RequestID // ids are random; the report is golden
	}
	var buf bytes.Buffer
	if err := WriteDisclosureReport(&buf, "123", ds); err != nil {
		t.Fatal(err)
	}
	if want := writeGolden(t, "disclosures.txt", buf.Bytes()); !bytes.Equal(want, buf.Bytes()) {
		t.Errorf("report differs from testdata/disclosures.txt:\n%s", buf.String())
	}
	if _, err := tl.Disclosures(ctx, "Patient/1/x"); err == nil {
		t.Error("malformed patient id accepted")
	}
}
