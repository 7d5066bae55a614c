package main

import (
	"testing"
	"time"
)

// wrkReport is wrk 4.1's output for a run with --latency.
const wrkReport = `Running 1s test @ http://127.0.0.1:18981/fhir/Patient/x
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    94.86us  187.69us   4.17ms   97.57%
    Req/Sec    25.90k     1.08k   26.96k    72.73%
  Latency Distribution
     50%   65.00us
     75%   78.00us
     90%  107.00us
     99%    1.20s 
  28277 requests in 1.10s, 61.35MB read
  Non-2xx or 3xx responses: 12
Requests/sec:  25716.32
Transfer/sec:     55.79MB
`

func TestParseWrk(t *testing.T) {
	s := parseWrk(wrkReport)
	want := sample{requests: 28277, seconds: 1.1, rps: 25716.32, p50: 65 * time.Microsecond, p99: 1200 * time.Millisecond,
		bytesPerS: 55.79 * (1 << 20), non2xx: 12}
	if s != want {
		t.Errorf("parseWrk:\n got %+v\nwant %+v", s, want)
	}
	if z := parseWrk("unable to connect"); z.requests != 0 {
		t.Errorf("a failed run parses as %+v", z)
	}
}

func TestUnmasked(t *testing.T) {
	tests := []struct {
		name, body string
		bad        bool
	}{
		{"masked patient", `{"resourceType":"Patient","id":"1","meta":{"security":[{"code":"REDACTED"}]},"contact":[{"telecom":[]}]}`, false},
		{"telecom left", `{"resourceType":"Patient","id":"1","meta":{"security":[{"code":"REDACTED"}]},"telecom":[]}`, true},
		{"no label", `{"resourceType":"Patient","id":"1"}`, true},
		{"bundle with a diagnosis", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Claim","id":"c","meta":{"security":[{"code":"REDACTED"}]},"diagnosis":[]}}]}`, true},
		{"masked bundle", `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Claim","id":"c","meta":{"security":[{"code":"REDACTED"}]}}},{"resource":{"resourceType":"Observation"}}]}`, false},
		{"not JSON", `<Patient/>`, true},
	}
	for _, tt := range tests {
		if got := unmasked([]byte(tt.body)); (got != "") != tt.bad {
			t.Errorf("%s: unmasked = %q, want bad=%v", tt.name, got, tt.bad)
		}
	}
}
