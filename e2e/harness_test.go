//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/fhirwall/fhirwall/policy"
)

// seedInfo is what the Medplum wrapper reports once it is ready.
type seedInfo struct {
	Ready bool   `json:"ready"`
	Port  int    `json:"port"`
	Base  string `json:"base"`
	Seed  struct {
		Patients               []string `json:"patients"`
		Organization           string   `json:"organization"`
		Practitioner           string   `json:"practitioner"`
		ObservationsPerPatient int      `json:"observationsPerPatient"`
		ClaimsPerPatient       int      `json:"claimsPerPatient"`
	} `json:"seed"`
}

// env is one running stack: the Medplum upstream, the fhirwall binary and
// the tokens of every agent.
type env struct {
	root       string // the repository root
	dir        string // the test's temporary folder (config, keys, audit.db)
	bin        string // the fhirwall binary
	configFile string
	upstream   seedInfo
	upstreamHP string // host:port of the upstream, which must never leak
	gw         string // http://127.0.0.1:PORT, fhirwall's public base
	tokens     map[string]string
	gwCmd      *exec.Cmd
	gwLog      *syncBuffer
	gwDone     chan struct{}

	// billingReadSHA is the hex SHA-256 of the body of the billing agent's
	// read of patient 0, which its AuditEvent must carry.
	billingReadSHA string
}

// syncBuffer collects a subprocess's output for failure messages.
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

// tail returns the last n bytes of the gateway log, for failure messages.
func (e *env) tail(n int) string {
	s := e.gwLog.String()
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}

// startEnv brings the whole stack up; t.Cleanup takes it down.
func startEnv(t *testing.T) *env {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{root: root, dir: t.TempDir(), tokens: map[string]string{}}
	for _, d := range []string{"medplum", "client"} {
		if _, err := os.Stat(filepath.Join(root, "e2e", d, "node_modules")); err != nil {
			t.Fatalf("e2e/%s/node_modules is missing: run e2e/run.sh (npm ci) first", d)
		}
	}
	e.startUpstream(t)
	e.build(t)
	e.writeConfig(t)
	e.startGateway(t)
	return e
}

// startUpstream runs the Medplum wrapper on a free port and waits for its
// ready line.
func (e *env) startUpstream(t *testing.T) {
	t.Helper()
	cmd := exec.Command("node", "server.mjs", "0")
	cmd.Dir = filepath.Join(e.root, "e2e", "medplum")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the Medplum upstream (is node installed?): %v", err)
	}
	t.Cleanup(func() { stop(cmd, nil) })
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		if !sc.Scan() {
			ready <- fmt.Errorf("the upstream exited before it was ready: %s", stderr.String())
			return
		}
		ready <- json.Unmarshal(sc.Bytes(), &e.upstream)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case err := <-ready:
		if err != nil || !e.upstream.Ready || len(e.upstream.Seed.Patients) < 3 {
			t.Fatalf("the Medplum upstream is not ready: %v %+v", err, e.upstream)
		}
	case <-time.After(90 * time.Second):
		t.Fatalf("the Medplum upstream was not ready within 90 s: %s", stderr.String())
	}
	e.upstreamHP = fmt.Sprintf("127.0.0.1:%d", e.upstream.Port)
	t.Logf("upstream: Medplum fhir-router at %s, %d patients", e.upstream.Base, len(e.upstream.Seed.Patients))
}

// build compiles the fhirwall binary the way users get it.
func (e *env) build(t *testing.T) {
	t.Helper()
	e.bin = filepath.Join(e.dir, "fhirwall")
	cmd := exec.Command("go", "build", "-o", e.bin, "./cmd/fhirwall")
	cmd.Dir = e.root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/fhirwall: %v\n%s", err, out)
	}
}

// writeConfig lays out the dev issuer key, its JWKS, the configuration and
// one token per agent.
func (e *env) writeConfig(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	e.gw = "http://" + listen
	issuer := e.gw + "/e2e-issuer"
	keyFile := filepath.Join(e.dir, "issuer-key.pem")
	if err := policy.GenerateDevKey(keyFile); err != nil {
		t.Fatal(err)
	}
	key, err := policy.LoadSigningKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := policy.PublicJWKS(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "jwks.json"), jwks, 0o644); err != nil {
		t.Fatal(err)
	}
	var cfg bytes.Buffer
	err = template.Must(template.New("cfg").Parse(configTemplate)).Execute(&cfg, map[string]string{
		"Listen": listen, "Public": e.gw, "Issuer": issuer, "Upstream": e.upstream.Base,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.configFile = filepath.Join(e.dir, "fhirwall.yaml")
	if err := os.WriteFile(e.configFile, cfg.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, a := range agentSpecs {
		d := policy.DevToken{Issuer: issuer, Audience: e.gw + "/fhir", Agent: a.id, Scopes: a.scopes, TTL: time.Hour}
		if a.patient {
			d.Patient = e.upstream.Seed.Patients[0]
		}
		tok, err := policy.MintDevToken(key, d)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[a.id] = tok
	}
	if out, err := exec.Command(e.bin, "check", "--config", e.configFile).CombinedOutput(); err != nil {
		t.Fatalf("fhirwall check refuses the e2e configuration: %v\n%s", err, out)
	}
}

// startGateway runs `fhirwall serve --config FILE` and waits for /readyz.
func (e *env) startGateway(t *testing.T) {
	t.Helper()
	e.gwLog = &syncBuffer{}
	e.gwCmd = exec.Command(e.bin, "serve", "--config", e.configFile)
	e.gwCmd.Dir = e.dir
	e.gwCmd.Stdout, e.gwCmd.Stderr = e.gwLog, e.gwLog
	if err := e.gwCmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.gwDone = make(chan struct{})
	go func() { _ = e.gwCmd.Wait(); close(e.gwDone) }()
	t.Cleanup(func() { stop(e.gwCmd, e.gwDone) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-e.gwDone:
			t.Fatalf("fhirwall serve exited at start:\n%s", e.tail(4000))
		default:
		}
		resp, err := http.Get(e.gw + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("fhirwall is not ready after 30 s (last: %v):\n%s", err, e.tail(4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopGateway ends fhirwall serve with SIGTERM (it drains and closes the
// audit log) and waits for it.
func (e *env) stopGateway(t *testing.T) {
	t.Helper()
	stop(e.gwCmd, e.gwDone)
}

// stop asks a process to end, then kills it after 20 s.
func stop(cmd *exec.Cmd, done chan struct{}) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if done == nil {
		done = make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
