//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// reply is one HTTP exchange with fhirwall.
type reply struct {
	status int
	header http.Header
	body   []byte
	method string
	url    string
}

func (r reply) String() string {
	b := string(r.body)
	if len(b) > 1500 {
		b = b[:1500] + "..."
	}
	return fmt.Sprintf("%s %s -> %d %s", r.method, r.url, r.status, b)
}

// call sends one request to fhirwall (path relative to its public base, or
// an absolute URL) as the agent whose token is tok ("" for none).
func (e *env) call(t *testing.T, method, path, tok string, body any) reply {
	t.Helper()
	u := path
	if !strings.HasPrefix(u, "http") {
		u = e.gw + path
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\ngateway log:\n%s", method, u, err, e.tail(3000))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, u, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b, method: method, url: u}
}

// object decodes r's body as one JSON object.
func (r reply) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, r)
	}
	return m
}

// agentResult is one step's outcome as e2e/client/agent.mjs reports it.
type agentResult struct {
	OK      bool             `json:"ok"`
	Status  int              `json:"status"`
	Outcome json.RawMessage  `json:"outcome"`
	Result  map[string]any   `json:"result"`
	Pages   []map[string]any `json:"pages"`
}

// runAgent runs the npm FHIR client (fhir-kit-client) as agent id with the
// given plan of steps, and returns one result per step.
func (e *env) runAgent(t *testing.T, id string, plan ...map[string]any) []agentResult {
	t.Helper()
	p, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "agent.mjs", string(p))
	cmd.Dir = filepath.Join(e.root, "e2e", "client")
	cmd.Env = append(os.Environ(), "FHIR_BASE="+e.gw+"/fhir", "TOKEN="+e.tokens[id])
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node agent.mjs: %v\n%s", err, stderr.String())
	}
	var res []agentResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(plan) {
		t.Fatalf("node agent.mjs printed %d results for %d steps (%v):\n%s", len(res), len(plan), err, out)
	}
	return res
}

// reasonOf returns the fhirwall reason code of an OperationOutcome.
func reasonOf(body []byte) string {
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Details struct {
				Coding []struct {
					System string `json:"system"`
					Code   string `json:"code"`
				} `json:"coding"`
			} `json:"details"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || oo.ResourceType != "OperationOutcome" {
		return ""
	}
	for _, is := range oo.Issue {
		for _, c := range is.Details.Coding {
			if c.System == fhir.ReasonSystem {
				return c.Code
			}
		}
	}
	return ""
}

// expectRefusal asserts r is a refusal with status and reason.
func expectRefusal(t *testing.T, r reply, status int, reason fhir.Reason) {
	t.Helper()
	if r.status != status || reasonOf(r.body) != string(reason) {
		t.Errorf("want %d %s, got:\n%s", status, reason, r)
	}
}

// upstreamSeen is what the Medplum wrapper recorded about the requests
// that reached it (see seen in e2e/medplum/server.mjs).
type upstreamSeen struct {
	Requests          int `json:"requests"`
	WithAuthorization int `json:"withAuthorization"`
	Last              struct {
		Method  string            `json:"method"`
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
	} `json:"last"`
}

// upstreamSeen asks the upstream directly (not through fhirwall).
func (e *env) upstreamSeen(t *testing.T) upstreamSeen {
	t.Helper()
	u := strings.Replace(e.upstream.Base, "/fhir/R4", "/debug/seen", 1)
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s upstreamSeen
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("%s: %v", u, err)
	}
	return s
}
