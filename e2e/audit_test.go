//go:build e2e

package e2e

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the audit store's driver, to tamper with it

	"github.com/fhirwall/fhirwall/fhir"
)

// testRevoke: the admin revokes agent-rogue-09 and its next request is
// refused with agent-revoked.
func testRevoke(t *testing.T, e *env) {
	rogue := e.tokens["agent-rogue-09"]
	p0 := e.upstream.Seed.Patients[0]
	if r := e.call(t, "GET", "/fhir/Patient/"+p0, rogue, nil); r.status != http.StatusOK {
		t.Fatalf("before revocation: %s", r)
	}
	// Only an admin may revoke.
	r := e.call(t, "POST", "/admin/revoke", e.tokens["agent-billing-07"], map[string]string{"agent": "agent-rogue-09", "reason": "e2e"})
	if r.status != http.StatusForbidden {
		t.Errorf("a non-admin revoked an agent: %s", r)
	}
	r = e.call(t, "POST", "/admin/revoke", e.tokens["admin-ops-01"], map[string]string{"agent": "agent-rogue-09", "reason": "e2e: walked the patient table"})
	if r.status != http.StatusOK {
		t.Fatalf("revoke: %s", r)
	}
	r = e.call(t, "GET", "/fhir/Patient/"+p0, rogue, nil)
	expectRefusal(t, r, http.StatusForbidden, fhir.ReasonAgentRevoked)
	res := e.runAgent(t, "agent-rogue-09", map[string]any{"op": "search", "resourceType": "Patient"})
	if res[0].OK || reasonOf(res[0].Outcome) != string(fhir.ReasonAgentRevoked) {
		t.Errorf("fhir-kit-client as the revoked agent: %+v", res[0])
	}
	// Others are untouched.
	if r := e.call(t, "GET", "/fhir/Patient/"+p0, e.tokens["agent-billing-07"], nil); r.status != http.StatusOK {
		t.Errorf("revoking one agent stopped another: %s", r)
	}
	// The kill switch is reversible by an admin.
	r = e.call(t, "POST", "/admin/restore", e.tokens["admin-ops-01"], map[string]string{"agent": "agent-rogue-09", "reason": "e2e: cleared"})
	if r.status != http.StatusOK {
		t.Fatalf("restore: %s", r)
	}
	if r := e.call(t, "GET", "/fhir/Patient/"+p0, rogue, nil); r.status != http.StatusOK {
		t.Errorf("after restore: %s", r)
	}
}

// testAuditorDisclosures: the privacy officer asks who saw patient 0 and
// gets a searchset of AuditEvents that names the billing and triage reads.
func testAuditorDisclosures(t *testing.T, e *env) {
	p0 := e.upstream.Seed.Patients[0]
	q := "/audit/AuditEvent?patient=Patient/" + p0
	r := e.call(t, "GET", q, e.tokens["agent-billing-07"], nil)
	if r.status != http.StatusForbidden {
		t.Errorf("an agent read the audit log: %s", r)
	}
	agents := map[string]bool{}
	var billingRead map[string]any // the event of testReadMasked's read
	total := 0
	pages := 0
	for u := q + "&_count=50"; u != "" && pages < 40; pages++ {
		r = e.call(t, "GET", u, e.tokens["auditor-privacy-01"], nil)
		if r.status != http.StatusOK {
			t.Fatalf("auditor search: %s", r)
		}
		b := r.object(t)
		if b["resourceType"] != "Bundle" || b["type"] != "searchset" {
			t.Fatalf("not a searchset Bundle: %.500s", r.body)
		}
		res, _, _ := entries(b)
		for _, ev := range res {
			if ev["resourceType"] != "AuditEvent" {
				t.Errorf("a %v in the audit searchset", ev["resourceType"])
				continue
			}
			total++
			raw, _ := json.Marshal(ev)
			if !strings.Contains(string(raw), "Patient/"+p0) {
				t.Errorf("AuditEvent/%v does not name Patient/%s", ev["id"], p0)
			}
			for _, a := range agentSpecs {
				if strings.Contains(string(raw), a.id) {
					agents[a.id] = true
				}
			}
			if e.billingReadSHA != "" && strings.Contains(string(raw), e.billingReadSHA) {
				billingRead = ev
			}
		}
		u = links(b)["next"]
		if u != "" && !strings.HasPrefix(u, e.gw+"/audit/") {
			t.Errorf("audit next link %q is not on fhirwall", u)
		}
	}
	for _, who := range []string{"agent-billing-07", "agent-triage-01", "agent-rogue-09"} {
		if !agents[who] {
			t.Errorf("the disclosures of Patient/%s do not name %s (%d events, agents %v)", p0, who, total, agents)
		}
	}
	// The billing agent's read is recorded with the SHA-256 of the exact
	// bytes it received, the masks applied, and Patient/p0 as disclosed.
	if billingRead == nil {
		t.Errorf("no AuditEvent of Patient/%s carries the SHA-256 %s of the body the billing agent received", p0, e.billingReadSHA)
		return
	}
	raw, _ := json.Marshal(billingRead)
	for _, want := range []string{"agent-billing-07", "contact-minimum", "audit-disclosed", "Patient/" + p0} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the billing read's AuditEvent lacks %q: %.2000s", want, raw)
		}
	}
}

// testAuditVerify checks the hash chain over HTTP while serving, then with
// `fhirwall audit verify` once the gateway has stopped.
func testAuditVerify(t *testing.T, e *env) {
	r := e.call(t, "GET", "/audit/$verify", e.tokens["auditor-privacy-01"], nil)
	if r.status != http.StatusOK || !verifyOK(r.body) {
		t.Errorf("GET /audit/$verify: %s", r)
	}
	e.stopGateway(t)
	out, err := exec.Command(e.bin, "audit", "verify", "--config", e.configFile).CombinedOutput()
	if err != nil {
		t.Errorf("fhirwall audit verify: %v\n%s", err, out)
	}
	t.Logf("fhirwall audit verify: %s", strings.TrimSpace(string(out)))
}

// verifyOK reads the "ok" parameter of a $verify Parameters resource.
func verifyOK(body []byte) bool {
	var p struct {
		Parameter []struct {
			Name         string `json:"name"`
			ValueBoolean *bool  `json:"valueBoolean"`
		} `json:"parameter"`
	}
	if json.Unmarshal(body, &p) != nil {
		return false
	}
	for _, x := range p.Parameter {
		if x.Name == "ok" && x.ValueBoolean != nil {
			return *x.ValueBoolean
		}
	}
	return false
}

// testAuditTamperEvident edits one audit record in the SQLite file while the
// gateway is stopped (an insider with file access), restarts the gateway
// and expects the chain check to name that record.
func testAuditTamperEvident(t *testing.T, e *env) {
	db, err := sql.Open("sqlite", filepath.Join(e.dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	var body []byte
	rows, err := db.Query(`SELECT seq, body FROM audit_records ORDER BY seq`)
	if err != nil {
		db.Close()
		t.Fatalf("read the audit records: %v", err)
	}
	for rows.Next() && seq == 0 {
		var b []byte
		var n int64
		if err := rows.Scan(&n, &b); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(`"AuditEvent"`)) && bytes.Contains(b, []byte("agent-billing-07")) {
			seq, body = n, b
		}
	}
	rows.Close()
	if seq == 0 {
		db.Close()
		t.Fatalf("no audit record of the billing agent in %s", filepath.Join(e.dir, "audit.db"))
	}
	forged := bytes.ReplaceAll(body, []byte("agent-billing-07"), []byte("agent-someone-99"))
	if _, err := db.Exec(`UPDATE audit_records SET body = ? WHERE seq = ?`, forged, seq); err != nil {
		db.Close()
		t.Fatalf("tamper: %v", err)
	}
	db.Close()
	t.Logf("tampered with audit record seq %d", seq)

	out, err := exec.Command(e.bin, "audit", "verify", "--config", e.configFile).CombinedOutput()
	t.Logf("fhirwall audit verify on the tampered store: %v\n%s", err, out)
	switch {
	case err == nil:
		t.Errorf("fhirwall audit verify passes a tampered chain:\n%s", out)
	case !strings.Contains(string(out), fmt.Sprint(seq)):
		t.Errorf("fhirwall audit verify fails but does not name record %d:\n%s", seq, out)
	}

	e.startGateway(t)
	r := e.call(t, "GET", "/audit/$verify", e.tokens["auditor-privacy-01"], nil)
	if r.status == http.StatusOK && verifyOK(r.body) {
		t.Fatalf("GET /audit/$verify passes a tampered chain: %s", r)
	}
	t.Logf("GET /audit/$verify on the tampered store: %s", r)
	if !strings.Contains(string(r.body), "hash-mismatch") || !strings.Contains(string(r.body), fmt.Sprint(seq)) {
		t.Errorf("GET /audit/$verify does not name the hash mismatch at seq %d: %s", seq, r)
	}
}
