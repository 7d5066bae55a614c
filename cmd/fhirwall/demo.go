package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/fhirwall/fhirwall/internal/fhirsample"
	"github.com/fhirwall/fhirwall/policy"
)

//go:embed demo.yaml
var demoConfig string

// demoAgent is a demo agent and the token it is given.
type demoAgent struct {
	id      string
	scopes  []string
	patient bool // carries the first demo patient as its patient context
	purpose []string
}

var demoAgents = []demoAgent{
	{id: "agent-billing-07", scopes: []string{"system/Claim.rs", "system/Coverage.rs", "system/Patient.rs"}, purpose: []string{"HPAYMT"}},
	{id: "agent-triage-01", scopes: []string{"patient/Patient.rs", "patient/Observation.rs", "patient/Condition.rs", "patient/Encounter.rs"}, patient: true, purpose: []string{"TREAT"}},
	{id: "agent-labs-03", scopes: []string{"system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}, purpose: []string{"TREAT"}},
	{id: "auditor-privacy-01", scopes: []string{"system/AuditEvent.rs"}, purpose: []string{"HOPERAT"}},
	{id: "admin-ops-01", scopes: []string{"fhirwall.admin"}, purpose: []string{"HOPERAT"}},
}

func runDemo(args []string, stdout, stderr io.Writer) error {
	fset := newFlags("demo", "demo [--listen ADDR] [--data-dir DIR]", stderr)
	listen := fset.String("listen", "127.0.0.1:8080", "gateway address")
	dataDir := fset.String("data-dir", "demo-data", "where the demo keeps its keys, tokens, config and audit store")
	upstreamAddr := fset.String("upstream-listen", "127.0.0.1:0", "address of the sample FHIR server")
	if err := fset.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := startDemo(ctx, *listen, *upstreamAddr, *dataDir, stdout)
	if err != nil {
		return err
	}
	defer d.close()
	d.printWelcome(stdout)
	<-ctx.Done()
	fmt.Fprintln(stderr, "fhirwall demo: stopping")
	return nil
}

// demo is a running demo: sample upstream, gateway and its files.
type demo struct {
	dir        string
	public     string
	upstream   *http.Server
	sample     *fhirsample.Server
	gateway    *server
	configFile string
}

func (d *demo) close() {
	d.gateway.close()
	_ = d.upstream.Close()
}

// startDemo lays out dir (issuer key, JWKS, config, tokens), starts the
// sample FHIR server and the gateway. Logs go to logOut as JSON.
func startDemo(ctx context.Context, listen, upstreamAddr, dir string, logOut io.Writer) (*demo, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		return nil, err
	}
	gwLn, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (is another demo running? use --listen): %w", listen, err)
	}
	public := "http://" + gwLn.Addr().String()
	issuer := public + "/demo-issuer"

	upLn, err := net.Listen("tcp", upstreamAddr)
	if err != nil {
		gwLn.Close()
		return nil, err
	}
	sample := fhirsample.New(fhirsample.Options{Patients: 20, Seed: 7})
	upstreamBase := "http://" + upLn.Addr().String() + "/fhir"
	sample.SetBaseURL(upstreamBase)
	mux := http.NewServeMux()
	mux.Handle("/fhir/", http.StripPrefix("/fhir", sample))
	up := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = up.Serve(upLn) }()
	d := &demo{dir: dir, public: public, upstream: up, sample: sample}
	fail := func(err error) (*demo, error) {
		_ = up.Close()
		gwLn.Close()
		return nil, err
	}

	keyFile := filepath.Join(dir, "issuer-key.pem")
	if _, err := os.Stat(keyFile); errors.Is(err, fs.ErrNotExist) {
		if err := policy.GenerateDevKey(keyFile); err != nil {
			return fail(err)
		}
	}
	key, err := policy.LoadSigningKey(keyFile)
	if err != nil {
		return fail(err)
	}
	jwks, err := policy.PublicJWKS(key)
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o644); err != nil {
		return fail(err)
	}
	var cfgText bytes.Buffer
	tmpl := template.Must(template.New("demo").Parse(demoConfig))
	if err := tmpl.Execute(&cfgText, map[string]string{
		"Listen": gwLn.Addr().String(), "Public": public, "Issuer": issuer, "Upstream": upstreamBase,
	}); err != nil {
		return fail(err)
	}
	d.configFile = filepath.Join(dir, "fhirwall.yaml")
	if err := os.WriteFile(d.configFile, cfgText.Bytes(), 0o644); err != nil {
		return fail(err)
	}
	patients := sample.PatientIDs()
	for _, a := range demoAgents {
		t := policy.DevToken{Issuer: issuer, Audience: public + "/fhir", Agent: a.id, Scopes: a.scopes,
			TTL: 24 * time.Hour, PurposeOfUse: a.purpose}
		if a.patient && len(patients) > 0 {
			t.Patient = patients[0]
		}
		tok, err := policy.MintDevToken(key, t)
		if err != nil {
			return fail(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tokens", a.id+".jwt"), []byte(tok+"\n"), 0o600); err != nil {
			return fail(err)
		}
	}
	cfg, problems := loadConfig(d.configFile)
	if len(problems) > 0 {
		return fail(fmt.Errorf("the embedded demo configuration is invalid:\n%s", problems.Error()))
	}
	logger := slog.New(slog.NewJSONHandler(logOut, nil))
	srv, err := startGateway(ctx, cfg, logger, gwLn)
	if err != nil {
		return fail(err)
	}
	d.gateway = srv
	go watchConfig(ctx, d.configFile, srv, logger)
	return d, nil
}

func (d *demo) printWelcome(w io.Writer) {
	patients := d.sample.PatientIDs()
	p0, p1 := "1", "2"
	if len(patients) > 1 {
		p0, p1 = patients[0], patients[1]
	}
	tok := func(id string) string { return "$(cat " + filepath.Join(d.dir, "tokens", id+".jwt") + ")" }
	var b strings.Builder
	fmt.Fprintf(&b, "\nfhirwall demo is running (synthetic data only: no real patient is in it).\n\n")
	fmt.Fprintf(&b, "  gateway        %s/fhir\n", d.public)
	fmt.Fprintf(&b, "  health         %s/healthz   %s/readyz   %s/metrics\n", d.public, d.public, d.public)
	fmt.Fprintf(&b, "  config         %s (edit it: the gateway reloads)\n", d.configFile)
	fmt.Fprintf(&b, "  tokens         %s/tokens/<agent-id>.jwt\n", d.dir)
	fmt.Fprintf(&b, "  audit store    %s/audit.db\n\n", d.dir)
	fmt.Fprintf(&b, "Try:\n\n")
	fmt.Fprintf(&b, "# the billing agent reads claims; diagnoses are masked\n")
	fmt.Fprintf(&b, "curl -s -H \"Authorization: Bearer %s\" '%s/fhir/Claim?patient=%s'\n\n", tok("agent-billing-07"), d.public, p0)
	fmt.Fprintf(&b, "# ...and a patient, without telecom or SSN, birth date cut to the year\n")
	fmt.Fprintf(&b, "curl -s -H \"Authorization: Bearer %s\" '%s/fhir/Patient/%s'\n\n", tok("agent-billing-07"), d.public, p0)
	fmt.Fprintf(&b, "# but not observations: 403 scope-missing\n")
	fmt.Fprintf(&b, "curl -s -H \"Authorization: Bearer %s\" '%s/fhir/Observation'\n\n", tok("agent-billing-07"), d.public)
	fmt.Fprintf(&b, "# the triage agent is confined to patient %s\n", p0)
	fmt.Fprintf(&b, "curl -s -H \"Authorization: Bearer %s\" '%s/fhir/Observation'\n", tok("agent-triage-01"), d.public)
	fmt.Fprintf(&b, "curl -s -H \"Authorization: Bearer %s\" '%s/fhir/Patient/%s'   # another patient: refused\n\n", tok("agent-triage-01"), d.public, p1)
	fmt.Fprintf(&b, "# no token, no data (and the attempt is audited)\n")
	fmt.Fprintf(&b, "curl -s '%s/fhir/Patient'\n\n", d.public)
	fmt.Fprintf(&b, "# the privacy officer: who saw patient %s?\n", p0)
	fmt.Fprintf(&b, "curl -s -H \"Authorization: Bearer %s\" '%s/audit/AuditEvent?patient=Patient/%s'\n", tok("auditor-privacy-01"), d.public, p0)
	fmt.Fprintf(&b, "curl -s -H \"Authorization: Bearer %s\" '%s/audit/$verify'\n\n", tok("auditor-privacy-01"), d.public)
	fmt.Fprintf(&b, "# the kill switch: revoke the billing agent everywhere\n")
	fmt.Fprintf(&b, "curl -s -X POST -H \"Authorization: Bearer %s\" -d '{\"agent\":\"agent-billing-07\",\"reason\":\"demo\"}' '%s/admin/revoke'\n\n", tok("admin-ops-01"), d.public)
	fmt.Fprintf(&b, "Stop with Ctrl-C. Gateway logs (JSON) follow.\n\n")
	fmt.Fprint(w, b.String())
}
