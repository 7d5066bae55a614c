package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// getAs sends GET url with the demo token of agent, read from dir/tokens
// ("" sends none), and returns the status and the body.
func getAs(t *testing.T, dir, agent, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if agent != "" {
		tok, err := os.ReadFile(filepath.Join(dir, "tokens", agent+".jwt"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCheckReportsEveryProblemWithFileAndLine(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.yaml")
	cfg := `public_base_url: http://127.0.0.1:8080
auth:
  issuers:
    - issuer: https://idp
      jwks_file: nowhere.json
      audiences: [x]
      algorithms: [ES256]
agents:
  - id: a
    roles: [r]
roles:
  r:
    scopes: [system/Claim.rs, system/Claim.frobnicate]
    masks: [m]
masks:
  m: [Claim.noSuchElement]
routes:
  - {name: ehr, prefix: /fhir, kind: fhir, upstream: "http://127.0.0.1:9/fhir"}
audit:
  store: sqlite://audit.db
`
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI("check", "--config", file)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		file + ":13: roles.r.scopes[1]",
		file + ":16: masks.m[0]",
		file + ":5: auth.issuers[0].jwks_file",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("missing %q in:\n%s", want, stderr)
		}
	}
}

func TestDemoDoesItsMainJob(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := startDemo(ctx, "127.0.0.1:0", "127.0.0.1:0", dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	get := func(agent, path string) (int, string) { return getAs(t, dir, agent, d.public+path) }
	if code, body := get("agent-billing-07", "/fhir/Claim"); code != 200 || strings.Contains(body, `"diagnosis"`) {
		t.Fatalf("billing Claim search: %d %.300s", code, body)
	}
	if code, _ := get("", "/fhir/Patient"); code != 401 {
		t.Fatalf("unauthenticated: %d", code)
	}
	if code, _ := get("agent-billing-07", "/fhir/Observation"); code != 403 {
		t.Fatalf("billing Observation: %d", code)
	}
	if code, body := get("auditor-privacy-01", "/audit/AuditEvent?agent=agent-billing-07"); code != 200 || !strings.Contains(body, "agent-billing-07") {
		t.Fatalf("auditor: %d %.300s", code, body)
	}
	// policy explain works on the demo's own files.
	code, out, stderr := runCLI("policy", "explain", "--config", d.configFile,
		"--token", filepath.Join(dir, "tokens", "agent-triage-01.jwt"), "GET", "/fhir/Observation")
	if code != 0 || !strings.Contains(out, "decision: ALLOW") || !strings.Contains(out, "narrowing added: subject=Patient/") {
		t.Fatalf("explain: exit %d\n%s%s", code, out, stderr)
	}
	d.close()
	// After the run the chain verifies, read-only.
	code, out, stderr = runCLI("audit", "verify", "--config", d.configFile)
	if code != 0 || !strings.Contains(out, "audit chain OK") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, stderr)
	}
}

func TestTokenCommand(t *testing.T) {
	key := filepath.Join(t.TempDir(), "k.pem")
	code, out, stderr := runCLI("token", "--key", key, "--new-key", "--agent", "agent-x", "--scope", "system/Patient.rs system/Claim.rs")
	if code != 0 || strings.Count(strings.TrimSpace(out), ".") != 2 || !strings.Contains(stderr, `"keys"`) {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	if code, _, _ := runCLI("token", "--key", key); code != 2 {
		t.Fatalf("missing flags: exit %d, want 2", code)
	}
}

// TestAdminRevokeReachesARunningSingleInstance: without Redis, the CLI's
// revocation reaches the running gateway through the revocations file
// within a second, and survives a restart until restored.
func TestAdminRevokeReachesARunningSingleInstance(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := startDemo(ctx, "127.0.0.1:0", "127.0.0.1:0", dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	status := func(d *demo) int {
		code, _ := getAs(t, dir, "agent-billing-07", d.public+"/fhir/Claim?_count=1")
		return code
	}
	if s := status(d); s != 200 {
		t.Fatalf("before: %d", s)
	}
	if code, out, errOut := runCLI("admin", "revoke", "--config", d.configFile, "--agent", "agent-billing-07", "--reason", "test"); code != 0 {
		t.Fatalf("revoke: %d %s %s", code, out, errOut)
	}
	deadline := time.Now().Add(time.Second)
	for status(d) != 403 {
		if time.Now().After(deadline) {
			t.Fatal("the running gateway still serves the revoked agent after 1s")
		}
		time.Sleep(25 * time.Millisecond)
	}
	d.close()
	d, err = startDemo(ctx, "127.0.0.1:0", "127.0.0.1:0", dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if s := status(d); s != 403 {
		t.Fatalf("after a restart the revoked agent got %d", s)
	}
	if code, out, errOut := runCLI("admin", "restore", "--config", d.configFile, "--agent", "agent-billing-07"); code != 0 {
		t.Fatalf("restore: %d %s %s", code, out, errOut)
	}
	deadline = time.Now().Add(time.Second)
	for status(d) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the restored agent is still refused after 1s")
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestAutoRevokeOnPatientBudget(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	demoDir := t.TempDir()
	d, err := startDemo(ctx, "127.0.0.1:0", "127.0.0.1:0", demoDir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	text, _ := os.ReadFile(d.configFile)
	cfgText := "auto_revoke_on_patient_budget: true\n" +
		strings.Replace(string(text), "patients_per_hour: 200", "patients_per_hour: 2", 1)
	dir := t.TempDir()
	jwks, _ := os.ReadFile(filepath.Join(demoDir, "jwks.json"))
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "fhirwall.yaml")
	if err := os.WriteFile(file, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, problems := loadConfig(file)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := startGateway(ctx, cfg, slog.New(slog.DiscardHandler), ln)
	if err != nil {
		t.Fatal(err)
	}
	get := func(id string) int {
		code, _ := getAs(t, demoDir, "agent-billing-07", "http://"+srv.addr+"/fhir/Patient/"+id)
		return code
	}
	for i, want := range []int{200, 200, 429, 403} {
		if got := get(fmt.Sprintf("pat-%03d", i+1)); got != want {
			t.Fatalf("request %d: %d, want %d", i+1, got, want)
		}
	}
	srv.close()
	code, out, errOut := runCLI("audit", "export", "--config", file)
	if code != 0 || !strings.Contains(out, "revoked automatically") || !strings.Contains(out, "agent-revoked") {
		t.Fatalf("export: %d %s %.400s", code, errOut, out)
	}
}

// syncBuffer is a bytes.Buffer safe for the gateway's logger and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestStartReportsAnAlteredAuditChain(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := startDemo(ctx, "127.0.0.1:0", "127.0.0.1:0", dir, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(d.public + "/fhir/Patient") // an audited refusal
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	d.close()
	db, err := sql.Open("sqlite", filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_records SET body = replace(body, 'unauthenticated', 'somebody-else') WHERE seq = (SELECT min(seq) FROM audit_records)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	var logs syncBuffer
	d, err = startDemo(ctx, "127.0.0.1:0", "127.0.0.1:0", dir, &logs)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "AUDIT CHAIN BROKEN") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning about the altered chain in:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConfigFileChangeReloads: an edit of the running configuration file
// is picked up; a broken edit is refused with file:line and the running
// configuration stays.
func TestConfigFileChangeReloads(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	d, err := startDemo(ctx, "127.0.0.1:0", "127.0.0.1:0", dir, &logs)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	status := func(agent string) int {
		code, _ := getAs(t, dir, agent, d.public+"/fhir/Observation?_count=1")
		return code
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not happen; logs:\n%s", what, logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if s := status("agent-labs-03"); s != 200 {
		t.Fatalf("before: %d", s)
	}
	text, _ := os.ReadFile(d.configFile)
	edited := strings.Replace(string(text), "  - id: agent-labs-03\n", "  - id: agent-labs-retired\n", 1)
	if err := os.WriteFile(d.configFile, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("the reload unregistering agent-labs-03", func() bool { return status("agent-labs-03") == 401 })
	if err := os.WriteFile(d.configFile, []byte(edited+"colour: blue\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("the refusal of a broken edit", func() bool {
		return strings.Contains(logs.String(), "reload refused") && strings.Contains(logs.String(), "fhirwall.yaml:")
	})
	if s1, s2 := status("agent-triage-01"), status("agent-labs-03"); s1 != 200 || s2 != 401 {
		t.Fatalf("after a refused reload the running configuration changed: %d %d", s1, s2)
	}
}
