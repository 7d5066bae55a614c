package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fhirwall/fhirwall/fhir"
)

// Handler serves the auditor API under prefix (e.g. "/audit"):
//
//	GET {prefix}/AuditEvent?...   search, a searchset Bundle with self/next links
//	GET {prefix}/AuditEvent/{id}  read one event
//	GET {prefix}/$verify          check the chain: Parameters (or OperationOutcome on error)
//
// The gateway authenticates the caller, checks its role and puts it in the
// request context with WithReader; a request without a Reader is refused
// with 401 (fail closed). Every call is itself audited, intent first: if the
// intent cannot be written the call is refused with 503 and nothing is read.
func (l *Log) Handler(prefix string) http.Handler {
	return &auditorAPI{log: l, prefix: strings.TrimRight(prefix, "/")}
}

type auditorAPI struct {
	log    *Log
	prefix string
}

var _ http.Handler = (*auditorAPI)(nil)

func (h *auditorAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reader, ok := ReaderFrom(r.Context())
	if !ok {
		fhir.WriteError(w, fhir.Errorf(fhir.ReasonTokenMissing, "the audit API needs an authenticated auditor"))
		return
	}
	rest, found := strings.CutPrefix(r.URL.Path, h.prefix)
	if !found {
		fhir.WriteError(w, fhir.Errorf(fhir.ReasonNotFound, ""))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		fhir.WriteError(w, fhir.Errorf(fhir.ReasonNotSupported, "the audit log is read-only"))
		return
	}
	a := h.access(r, reader)
	switch {
	case rest == "/AuditEvent" || rest == "/AuditEvent/":
		a.Interaction = "search-type"
		h.serve(w, r, a, h.search)
	case strings.HasPrefix(rest, "/AuditEvent/") && !strings.Contains(rest[len("/AuditEvent/"):], "/"):
		a.Interaction = "read"
		a.ResourceID = rest[len("/AuditEvent/"):]
		h.serve(w, r, a, h.read)
	case rest == "/$verify":
		a.Interaction = "operation"
		a.ResourceType = ""
		h.serve(w, r, a, h.verify)
	default:
		fhir.WriteError(w, fhir.Errorf(fhir.ReasonNotFound, "no such audit endpoint"))
	}
}

func (h *auditorAPI) access(r *http.Request, rd Reader) *Access {
	src := rd.SourceAddr
	if src == "" {
		src = r.RemoteAddr
	}
	reqID := r.Header.Get("X-Request-Id")
	if reqID == "" {
		reqID = newUUID()
	}
	return &Access{
		RequestID:    reqID,
		Start:        h.log.opts.now(),
		Agent:        Agent{ID: rd.AgentID, ClientID: rd.ClientID, JTI: rd.JTI, Roles: rd.Roles},
		SourceAddr:   src,
		Route:        "audit",
		Method:       r.Method,
		Path:         r.URL.Path,
		Query:        r.URL.RawQuery,
		ResourceType: "AuditEvent",
		Decision:     DecisionAllow,
	}
}

// result is what an endpoint produces: a body to send, the resources and
// patients it discloses, or an error.
type result struct {
	status    int
	body      []byte
	resources []ResourceRef
	patients  []string
}

// serve wraps an endpoint in the two-phase audit of the audit read itself.
func (h *auditorAPI) serve(w http.ResponseWriter, r *http.Request, a *Access, fn func(context.Context, *http.Request, *Access) (result, error)) {
	ctx := r.Context()
	pending, err := h.log.Intent(ctx, a)
	if err != nil {
		a.Reason = string(fhir.ReasonAuditUnavailable)
		a.Status = http.StatusServiceUnavailable
		fhir.WriteError(w, err)
		return
	}
	res, err := fn(ctx, r, a)
	if err != nil {
		reason := fhir.ReasonOf(err)
		a.Reason = string(reason)
		a.Status = reason.Status()
		if reason.Status() < 500 {
			a.Decision = DecisionDeny
		}
		fhir.WriteError(w, err)
	} else {
		sum := sha256.Sum256(res.body)
		a.Status = res.status
		a.Resources = res.resources
		a.Patients = append(a.Patients, res.patients...)
		a.ResponseSHA256 = hex.EncodeToString(sum[:])
		a.ResponseBytes = int64(len(res.body))
		hd := w.Header()
		hd.Set("Content-Type", fhir.ContentTypeJSON)
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(res.status)
		if r.Method != http.MethodHead {
			if _, werr := w.Write(res.body); werr != nil {
				a.Failed = true
				a.FailureDetail = "client gone while sending"
			}
		}
	}
	a.End = h.log.opts.now()
	// The response is already sent; a failed completion leaves the intent
	// open, to be closed as incomplete at the next start.
	_ = pending.Complete(ctx, a)
}

func (h *auditorAPI) baseURL(r *http.Request) string {
	if b := h.log.opts.BaseURL; b != "" {
		return strings.TrimRight(b, "/") + h.prefix
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + h.prefix
}

type bundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

type bundleEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Search   struct {
		Mode string `json:"mode"`
	} `json:"search"`
}

type bundle struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Meta         struct {
		LastUpdated string `json:"lastUpdated"`
	} `json:"meta"`
	Type  string        `json:"type"`
	Link  []bundleLink  `json:"link"`
	Entry []bundleEntry `json:"entry,omitempty"`
}

func (h *auditorAPI) search(ctx context.Context, r *http.Request, a *Access) (result, error) {
	params := r.URL.Query()
	q, err := parseSearch(params)
	if err != nil {
		return result{}, err
	}
	for _, g := range q.Refs {
		if g.Key == "patient" {
			a.Patients = append(a.Patients, g.Values...)
		}
	}
	limit := q.Limit
	q.Limit = limit + 1 // one more tells whether there is a next page
	if err := h.log.syncIndex(ctx); err != nil {
		return result{}, err
	}
	recs, err := h.log.store.Search(ctx, q)
	if err != nil {
		return result{}, unavailable(err)
	}
	more := len(recs) > limit
	if more {
		recs = recs[:limit]
	}
	base := h.baseURL(r)
	b := bundle{ResourceType: "Bundle", ID: newUUID(), Type: "searchset"}
	b.Meta.LastUpdated = ts(h.log.opts.now())
	b.Link = []bundleLink{{Relation: "self", URL: base + "/AuditEvent" + queryString(params)}}
	if more {
		next := url.Values{}
		for k, vs := range params {
			next[k] = vs
		}
		next.Set("_cursor", strconv.FormatInt(recs[len(recs)-1].Seq, 10))
		b.Link = append(b.Link, bundleLink{Relation: "next", URL: base + "/AuditEvent" + queryString(next)})
	}
	var res result
	for _, rec := range recs {
		e := bundleEntry{FullURL: base + "/AuditEvent/" + rec.EventID, Resource: rec.Body}
		e.Search.Mode = "match"
		b.Entry = append(b.Entry, e)
		res.resources = append(res.resources, ResourceRef{Type: "AuditEvent", ID: rec.EventID})
	}
	body, err := json.Marshal(b)
	if err != nil {
		return result{}, fhir.Wrap(fhir.ReasonInternal, err, "")
	}
	res.status = http.StatusOK
	res.body = body
	return res, nil
}

func queryString(v url.Values) string {
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

func (h *auditorAPI) read(ctx context.Context, r *http.Request, a *Access) (result, error) {
	rec, err := h.log.store.Event(ctx, a.ResourceID)
	if err != nil {
		return result{}, unavailable(err)
	}
	if rec == nil {
		return result{}, fhir.Errorf(fhir.ReasonNotFound, "no AuditEvent with that id")
	}
	return result{status: http.StatusOK, body: bytes.Clone(rec.Body),
		resources: []ResourceRef{{Type: "AuditEvent", ID: rec.EventID}}}, nil
}

type param struct {
	Name         string  `json:"name"`
	ValueBoolean *bool   `json:"valueBoolean,omitempty"`
	ValueDecimal *int64  `json:"valueDecimal,omitempty"`
	ValueString  *string `json:"valueString,omitempty"`
	ValueCode    *string `json:"valueCode,omitempty"`
	ValueInstant *string `json:"valueInstant,omitempty"`
	Part         []param `json:"part,omitempty"`
}

// verifyParameters renders a VerifyReport as a FHIR Parameters resource.
func verifyParameters(rep VerifyReport) any {
	num := func(name string, n int64) param { return param{Name: name, ValueDecimal: &n} }
	str := func(name, s string) param { return param{Name: name, ValueString: &s} }
	ps := []param{
		{Name: "ok", ValueBoolean: ptr(rep.OK)},
		num("records", rep.Records),
		{Name: "head", Part: []param{num("seq", rep.Head.Seq), str("hash", rep.Head.Hash)}},
		num("checkpoints", int64(rep.Checkpoints)),
		num("unanchored", rep.Unanchored),
	}
	if p := rep.Problem; p != nil {
		ps = append(ps, param{Name: "problem", Part: []param{
			{Name: "kind", ValueCode: ptr(p.Kind)}, num("seq", p.Seq), str("detail", p.Detail)}})
	}
	if c := rep.LastGoodCheckpoint; c != nil {
		ps = append(ps, param{Name: "lastGoodCheckpoint", Part: []param{
			num("seq", c.Seq), str("hash", c.Hash), {Name: "created", ValueInstant: ptr(ts(c.Created))}}})
	}
	return struct {
		ResourceType string  `json:"resourceType"`
		Parameter    []param `json:"parameter"`
	}{"Parameters", ps}
}

func (h *auditorAPI) verify(ctx context.Context, r *http.Request, a *Access) (result, error) {
	if len(r.URL.Query()) > 0 {
		return result{}, fhir.Errorf(fhir.ReasonRequestInvalid, "$verify takes no parameters")
	}
	// Verification reads the whole chain: give it more than a request's
	// worth of time, but never more than a minute.
	vctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rep, err := h.log.Verify(vctx)
	if err != nil {
		return result{}, unavailable(err)
	}
	body, err := json.Marshal(verifyParameters(rep))
	if err != nil {
		return result{}, fhir.Wrap(fhir.ReasonInternal, err, "")
	}
	return result{status: http.StatusOK, body: body}, nil
}
