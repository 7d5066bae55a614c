package audit

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// fakeClock advances one minute per reading, so every record has its own
// minute and date searches are exact.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Minute)
	return c.t
}

var auditor = Reader{AgentID: "auditor-ann", ClientID: "audit-console", JTI: "jti-aud", Roles: []string{"privacy-officer"}, SourceAddr: "10.9.9.9:4444"}

type searchFixture struct {
	tl  *testLog
	srv *httptest.Server
}

// newSearchFixture records 6 accesses: agents a1/a2 alternating, patients
// 1,2,3 cycling, one refusal.
func newSearchFixture(t *testing.T, k storeKind) *searchFixture {
	opts := testOptions()
	opts.now = (&fakeClock{t: t0}).now
	tl := openTestLog(t, k, "", opts)
	recordN(t, tl.Log, 6, func(i int, a *Access) {
		a.Agent.ID = []string{"a1", "a2"}[i%2]
		a.Patients = []string{[]string{"1", "2", "3"}[i%3]}
		a.Resources = []ResourceRef{{Type: "Observation", ID: "o" + string(rune('0'+i)), Version: "1"}}
		if i == 5 {
			a.Decision, a.Reason, a.Status, a.Resources = DecisionDeny, "scope-missing", 403, nil
		}
	})
	h := tl.Handler("/audit")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test-Anonymous") == "" {
			r = r.WithContext(WithReader(r.Context(), auditor))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &searchFixture{tl: tl, srv: srv}
}

func (f *searchFixture) get(t *testing.T, path string, hdr ...string) (int, map[string]any) {
	t.Helper()
	if !strings.HasPrefix(path, "http") {
		path = f.srv.URL + path
	}
	req, _ := http.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: body: %v", path, err)
	}
	return resp.StatusCode, body
}

// requestIDs lists the XrequestId of each entry of a searchset Bundle.
func requestIDs(t *testing.T, b map[string]any) []string {
	t.Helper()
	if b["resourceType"] != "Bundle" || b["type"] != "searchset" {
		t.Fatalf("not a searchset: %v", b)
	}
	var out []string
	entries, _ := b["entry"].([]any)
	for _, e := range entries {
		raw, _ := json.Marshal(e.(map[string]any)["resource"])
		ev, err := fm.UnmarshalAuditEvent(raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range ev.Entity {
			if code(en.Type) == "XrequestId" {
				out = append(out, *en.What.Identifier.Value)
			}
		}
	}
	return out
}

func link(b map[string]any, rel string) string {
	links, _ := b["link"].([]any)
	for _, l := range links {
		m := l.(map[string]any)
		if m["relation"] == rel {
			return m["url"].(string)
		}
	}
	return ""
}

func TestAuditorSearch(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		f := newSearchFixture(t, k)
		// Open reads the clock once, then req-000i is recorded at 02:(16+i).
		cases := []struct {
			query string
			want  []string // request ids, newest first unless _sort=date
		}{
			{"", []string{"req-0005", "req-0004", "req-0003", "req-0002", "req-0001", "req-0000"}},
			{"_sort=date", []string{"req-0000", "req-0001", "req-0002", "req-0003", "req-0004", "req-0005"}},
			{"patient=1", []string{"req-0003", "req-0000"}},
			{"patient=Patient/2", []string{"req-0004", "req-0001"}},
			{"patient=1,3", []string{"req-0005", "req-0003", "req-0002", "req-0000"}},
			{"agent=a2", []string{"req-0005", "req-0003", "req-0001"}},
			{"agent=a2&patient=3", []string{"req-0005"}},
			{"outcome=4", []string{"req-0005"}},
			{"outcome=0&agent=a1", []string{"req-0004", "req-0002", "req-0000"}},
			{"action=R&subtype=read", []string{"req-0005", "req-0004", "req-0003", "req-0002", "req-0001", "req-0000"}},
			{"subtype=search-type", nil},
			{"entity=Observation/o2", []string{"req-0002"}},
			{"entity=Observation/o2/_history/1", []string{"req-0002"}},
			{"entity=Observation/o2/_history/2", nil},
			{"entity=Observation/o", nil}, // a prefix of o2 is another resource
			{"date=ge2026-11-26T02:17:00Z", []string{"req-0005", "req-0004", "req-0003", "req-0002", "req-0001"}},
			{"date=gt2026-11-26T02:17Z", []string{"req-0005", "req-0004", "req-0003", "req-0002"}},
			{"date=lt2026-11-26T02:17:00Z", []string{"req-0000"}},
			{"date=le2026-11-26T02:17:00Z", []string{"req-0001", "req-0000"}},
			{"date=2026-11-26T02:16:00Z", []string{"req-0000"}},
			{"date=2026-11-26", []string{"req-0005", "req-0004", "req-0003", "req-0002", "req-0001", "req-0000"}},
			{"date=2026-11-25", nil},
			{"date=ge2026-11-26T02:16:00Z&date=le2026-11-26T02:18:00Z", []string{"req-0002", "req-0001", "req-0000"}},
		}
		for _, c := range cases {
			status, b := f.get(t, "/audit/AuditEvent?"+c.query)
			if status != 200 {
				t.Fatalf("%s: status %d %v", c.query, status, b)
			}
			// Searches themselves are audited; only the fixture's accesses
			// carry req- ids.
			var got []string
			for _, id := range requestIDs(t, b) {
				if strings.HasPrefix(id, "req-") {
					got = append(got, id)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("%q: got %v, want %v", c.query, got, c.want)
			}
		}
	})
}

func TestAuditorPaging(t *testing.T) {
	forEachStore(t, func(t *testing.T, k storeKind) {
		f := newSearchFixture(t, k)
		next := "/audit/AuditEvent?agent=a1,a2&_count=4"
		var all []string
		pages := 0
		for next != "" {
			status, b := f.get(t, next)
			if status != 200 {
				t.Fatalf("status %d", status)
			}
			if self := link(b, "self"); !strings.Contains(self, "/audit/AuditEvent?") {
				t.Errorf("self link %q", self)
			}
			all = append(all, requestIDs(t, b)...)
			next = link(b, "next")
			pages++
		}
		want := []string{"req-0005", "req-0004", "req-0003", "req-0002", "req-0001", "req-0000"}
		if pages != 2 || !slices.Equal(all, want) {
			t.Errorf("%d pages: %v", pages, all)
		}
	})
}

func TestAuditorAPI(t *testing.T) {
	f := newSearchFixture(t, sqliteKind)
	cases := []struct {
		name, path string
		hdr        []string
		status     int
		check      func(t *testing.T, b map[string]any)
	}{
		{"no-reader", "/audit/AuditEvent", []string{"X-Test-Anonymous", "1"}, 401, nil},
		{"unknown-param", "/audit/AuditEvent?name=x", nil, 400, nil},
		{"bad-date", "/audit/AuditEvent?date=yesterday", nil, 400, nil},
		{"bad-prefix", "/audit/AuditEvent?date=ne2026", nil, 400, nil},
		{"bad-outcome", "/audit/AuditEvent?outcome=3", nil, 400, nil},
		{"bad-count", "/audit/AuditEvent?_count=0", nil, 400, nil},
		{"bad-sort", "/audit/AuditEvent?_sort=agent", nil, 400, nil},
		{"unknown-id", "/audit/AuditEvent/nope", nil, 404, nil},
		{"unknown-path", "/audit/Patient", nil, 404, nil},
		{"verify", "/audit/$verify", nil, 200, func(t *testing.T, b map[string]any) {
			if b["resourceType"] != "Parameters" {
				t.Fatalf("%v", b)
			}
			p := b["parameter"].([]any)[0].(map[string]any)
			if p["name"] != "ok" || p["valueBoolean"] != true {
				t.Errorf("verify: %v", b)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, b := f.get(t, c.path, c.hdr...)
			if status != c.status {
				t.Fatalf("status %d, want %d: %v", status, c.status, b)
			}
			if status >= 400 && b["resourceType"] != "OperationOutcome" {
				t.Errorf("error is not an OperationOutcome: %v", b)
			}
			if c.check != nil {
				c.check(t, b)
			}
		})
	}
	t.Run("read", func(t *testing.T) {
		recs, _ := f.tl.store.Search(context.Background(), Query{Limit: 1, Desc: true})
		status, b := f.get(t, "/audit/AuditEvent/"+recs[0].EventID)
		if status != 200 || b["id"] != recs[0].EventID || b["resourceType"] != "AuditEvent" {
			t.Fatalf("%d %v", status, b)
		}
	})
	t.Run("post-refused", func(t *testing.T) {
		resp, err := http.Post(f.srv.URL+"/audit/AuditEvent", "application/fhir+json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("POST status %d", resp.StatusCode)
		}
	})
}

// TestAuditReadIsAudited: a search of the audit log leaves its own event,
// with the auditor as agent and the patient searched for.
func TestAuditReadIsAudited(t *testing.T) {
	f := newSearchFixture(t, sqliteKind)
	if status, _ := f.get(t, "/audit/AuditEvent?patient=2", "X-Request-Id", "audit-read-1"); status != 200 {
		t.Fatal(status)
	}
	// The completion is written after the response ends, so the client
	// may see the response a moment before the event is searchable.
	var b map[string]any
	var ids []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, b = f.get(t, "/audit/AuditEvent?agent=auditor-ann&subtype=search-type&entity=Patient/2")
		if ids = requestIDs(t, b); slices.Contains(ids, "audit-read-1") {
			break
		}
	}
	if !slices.Contains(ids, "audit-read-1") {
		t.Fatalf("audit read not recorded: %v", ids)
	}
	// The recorded read names what it returned.
	entries := b["entry"].([]any)
	raw, _ := json.Marshal(entries[len(entries)-1].(map[string]any)["resource"])
	if !strings.Contains(string(raw), `"AuditEvent/`) || !strings.Contains(string(raw), "audit-console") {
		t.Errorf("audit read event lacks returned events or client: %s", raw)
	}
}
