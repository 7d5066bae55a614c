package fhirsample

import (
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// Patients is how many synthetic patients to generate; 0 means 20.
	Patients int
	// Seed makes the data deterministic: two servers built with the same
	// Options serve byte-identical resources.
	Seed int64
	// BaseURL is the absolute FHIR base used in Bundle.entry.fullUrl,
	// Bundle.link.url and Location, e.g. http://127.0.0.1:9090/fhir. It
	// may be left empty and set later with SetBaseURL.
	BaseURL string
}

// maxBody bounds a request body; the sample server is no bulk loader.
const maxBody = 8 << 20

// Server is an in-memory FHIR R4 server. It is safe for concurrent use:
// reads share a read lock, and every write, batch and transaction holds
// the write lock for its whole duration.
type Server struct {
	mu   sync.RWMutex
	db   *db
	base string

	now     func() time.Time // clock for writes; tests may replace it
	bundles atomic.Int64     // numbers Bundle ids
}

// New builds a Server holding the synthetic data set.
//
// The shape of the data depends only on opts.Patients, never on the seed,
// so demos and tests can name ids directly. For patient number n
// (1..Patients, three digits, e.g. pat-001):
//
//   - Patient/pat-NNN with an MRN and a US SSN (999-xx-xxxx) identifier,
//     generalPractitioner prac-((n-1)%5+1), managingOrganization org-clinic
//   - Observation/obs-NNN-1 .. obs-NNN-4: category vital-signs, LOINC
//     8867-4 heart rate, 8310-5 body temperature, 29463-7 body weight,
//     9279-1 respiratory rate; performer a Practitioner
//   - Observation/obs-NNN-5 .. obs-NNN-7: category laboratory, LOINC 2339-0
//     glucose, 718-7 hemoglobin, 4548-4 HbA1c; performer org-clinic
//   - obs-NNN-7 has status preliminary, all other Observations final;
//     odd-numbered ones belong to enc-NNN-1, even-numbered to enc-NNN-2
//   - Encounter/enc-NNN-1 and enc-NNN-2, status finished
//   - Condition/cond-NNN-1 (encounter-diagnosis, resolved) and
//     cond-NNN-2 (problem-list-item, active), ICD-10-CM coded
//   - Coverage/cov-NNN, payor org-payer-1 for odd n, org-payer-2 for even n
//   - Claim/claim-NNN-1 and claim-NNN-2 only for odd n (pat-001, pat-003,
//     ...), insurer the patient's payor, provider org-clinic; claim-NNN-1
//     has cond-NNN-1's ICD-10 code as diagnosis, claim-NNN-2 both codes
//
// Shared by all: Practitioner/prac-1 .. prac-5, Organization/org-clinic,
// org-payer-1 and org-payer-2.
func New(opts Options) *Server {
	if opts.Patients <= 0 {
		opts.Patients = 20
	}
	return &Server{
		db:   generated(opts.Patients, opts.Seed),
		base: strings.TrimSuffix(opts.BaseURL, "/"),
		now:  func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) },
	}
}

// datasets caches each generated data set, so that tests which build a
// Server per case pay for generation once; every Server gets a clone,
// which shares the immutable versions.
var datasets struct {
	sync.Mutex
	m map[[2]int64]*db
}

func generated(patients int, seed int64) *db {
	datasets.Lock()
	defer datasets.Unlock()
	key := [2]int64{int64(patients), seed}
	d, ok := datasets.m[key]
	if !ok {
		d = newDB()
		generate(d, patients, seed)
		if datasets.m == nil {
			datasets.m = map[[2]int64]*db{}
		}
		datasets.m[key] = d
	}
	return d.clone()
}

// SetBaseURL sets the absolute base URL used in links from now on. The
// demo calls it once the listener's port is known.
func (s *Server) SetBaseURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base = strings.TrimSuffix(u, "/")
}

// PatientIDs returns the ids of the Patients that exist now (created ones
// included, deleted ones not), in creation order.
func (s *Server) PatientIDs() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	s.db.live("Patient", func(id string, _ *version) bool {
		ids = append(ids, id)
		return true
	})
	return ids
}

// request is one FHIR interaction, from HTTP or from a Bundle entry.
type request struct {
	method string
	segs   []string // path below the base, split on "/"
	query  url.Values
	body   []byte
	res    map[string]any // the parsed body, when a Bundle entry carried it
	header http.Header    // If-Match, Prefer
}

// response is the answer to one interaction before it is written.
type response struct {
	status int
	header http.Header // Location, ETag, Last-Modified
	body   []byte      // a FHIR resource, or nil
}

// view is what one interaction works on: the database (the live one, or a
// transaction's clone) and the base URL for links.
type view struct {
	s    *Server
	d    *db
	base string
}

// ServeHTTP answers one FHIR REST request. The caller mounts it at the
// FHIR base with http.StripPrefix, so r.URL.Path is e.g. "/Patient/123".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resp := s.serve(r)
	h := w.Header()
	for k, vs := range resp.header {
		h[k] = vs
	}
	if resp.body != nil {
		h.Set("Content-Type", "application/fhir+json; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	}
	w.WriteHeader(resp.status)
	if resp.body != nil && r.Method != http.MethodHead {
		_, _ = w.Write(resp.body)
	}
}

func (s *Server) serve(r *http.Request) response {
	if f := negotiate(r); f != nil {
		return f.response()
	}
	req := request{
		method: r.Method,
		segs:   splitPath(r.URL.Path),
		query:  r.URL.Query(),
		header: r.Header,
	}
	if r.Method == http.MethodHead {
		req.method = http.MethodGet
	}
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil || len(body) > maxBody {
			return fail(http.StatusRequestEntityTooLarge, "too-costly", "request body is unreadable or larger than %d bytes", maxBody).response()
		}
		req.body = body
	}
	// POST [type]/_search carries its parameters as a form body.
	if r.Method == http.MethodPost && len(req.segs) == 2 && req.segs[1] == "_search" {
		form, err := url.ParseQuery(string(req.body))
		if err != nil {
			return badRequest("the _search body is not application/x-www-form-urlencoded: %v", err).response()
		}
		for k, vs := range form {
			req.query[k] = append(req.query[k], vs...)
		}
		req.body = nil
		req.method = http.MethodGet
	}

	if req.method == http.MethodGet {
		s.mu.RLock()
		defer s.mu.RUnlock()
	} else {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	v := view{s: s, d: s.db, base: s.base}
	if len(req.segs) == 0 && req.method == http.MethodPost {
		return v.bundle(req)
	}
	return v.handle(req)
}

// negotiate refuses requests for or with a format other than JSON.
func negotiate(r *http.Request) *failure {
	if f := r.URL.Query().Get("_format"); f != "" && !strings.Contains(f, "json") {
		return fail(http.StatusNotAcceptable, "not-supported", "only JSON is supported (_format=%s)", f)
	}
	if a := r.Header.Get("Accept"); a != "" && strings.Contains(a, "xml") &&
		!strings.Contains(a, "json") && !strings.Contains(a, "*/*") {
		return fail(http.StatusNotAcceptable, "not-supported", "only application/fhir+json is supported")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && r.Method != http.MethodGet {
		mt, _, err := mime.ParseMediaType(ct)
		isPost := r.Method == http.MethodPost
		switch {
		case err != nil:
			return fail(http.StatusUnsupportedMediaType, "not-supported", "unparsable Content-Type")
		case mt == "application/fhir+json" || mt == "application/json":
		case isPost && mt == "application/x-www-form-urlencoded" && strings.HasSuffix(r.URL.Path, "/_search"):
		default:
			return fail(http.StatusUnsupportedMediaType, "not-supported", "only application/fhir+json bodies are supported, not %s", mt)
		}
	}
	return nil
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// lenient reports whether unknown search parameters are ignored, the FHIR
// default, rather than refused ("Prefer: handling=strict").
func lenient(h http.Header) bool {
	for _, p := range h.Values("Prefer") {
		if strings.Contains(p, "handling=strict") {
			return false
		}
	}
	return true
}

// preferMinimal reports whether the client asked for no body on writes.
func preferMinimal(h http.Header) bool {
	for _, p := range h.Values("Prefer") {
		if strings.Contains(p, "return=minimal") {
			return true
		}
	}
	return false
}

var _ http.Handler = (*Server)(nil)
