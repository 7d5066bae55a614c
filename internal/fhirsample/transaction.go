package fhirsample

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// inBundle is a batch or transaction Bundle as a client sends it.
type inBundle struct {
	ResourceType string    `json:"resourceType"`
	Type         string    `json:"type"`
	Entry        []inEntry `json:"entry"`
}

type inEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *struct {
		Method  string `json:"method"`
		URL     string `json:"url"`
		IfMatch string `json:"ifMatch"`
	} `json:"request"`
}

// bundle answers a POST of a batch or transaction Bundle to the base.
//
// A batch runs its entries in order, each on its own: a failed entry is
// answered with its OperationOutcome in the batch-response and the others
// still run. A transaction is atomic: it runs on a clone of the database
// that replaces the live one only if every entry succeeds; otherwise the
// client gets the first failure and nothing has changed. Its entries run
// in the order R4 prescribes (DELETE, POST, PUT, GET), and references to
// the urn:uuid fullUrl of an entry being created are rewritten to the id
// the server assigned. The caller holds the write lock.
func (v view) bundle(req request) response {
	var in inBundle
	if err := json.Unmarshal(req.body, &in); err != nil {
		return badRequest("the body is not a JSON Bundle: %v", err).response()
	}
	if in.ResourceType != "Bundle" {
		return badRequest("only a Bundle may be posted to the base, not %q", in.ResourceType).response()
	}
	if in.Type != "batch" && in.Type != "transaction" {
		return badRequest("Bundle.type must be batch or transaction, not %q", in.Type).response()
	}
	tx := in.Type == "transaction"

	reqs := make([]request, len(in.Entry))
	bad := make([]*failure, len(in.Entry))
	for i, e := range in.Entry {
		reqs[i], bad[i] = v.entryRequest(e)
		if bad[i] != nil && tx {
			bad[i].detail = "entry " + strconv.Itoa(i) + ": " + bad[i].detail
			return bad[i].response()
		}
	}

	work := v
	if tx {
		work.d = v.d.clone()
	}
	// Reserve ids for creates, so that references between the new
	// resources can be resolved before any of them is stored.
	ids := make([]string, len(reqs))
	refs := map[string]string{}
	for i, r := range reqs {
		if bad[i] == nil && r.method == http.MethodPost && len(r.segs) == 1 && isType(r.segs[0]) {
			ids[i] = work.d.newID(r.segs[0])
			if tx && strings.HasPrefix(in.Entry[i].FullURL, "urn:") {
				refs[in.Entry[i].FullURL] = r.segs[0] + "/" + ids[i]
			}
		}
	}
	if len(refs) > 0 {
		for _, r := range reqs {
			if r.res != nil {
				rewriteRefs(r.res, refs)
			}
		}
	}

	order := make([]int, len(reqs))
	for i := range order {
		order[i] = i
	}
	if tx {
		rank := map[string]int{http.MethodDelete: 0, http.MethodPost: 1, http.MethodPut: 2, http.MethodGet: 3}
		slices.SortStableFunc(order, func(a, b int) int { return rank[reqs[a].method] - rank[reqs[b].method] })
	}

	out := v.newBundle(in.Type + "-response")
	out.Entry = make([]bundleEntry, len(reqs))
	for _, i := range order {
		var resp response
		switch {
		case bad[i] != nil:
			resp = bad[i].response()
		case ids[i] != "":
			resp = work.create(reqs[i].segs[0], reqs[i], ids[i])
		case len(reqs[i].segs) == 0:
			resp = badRequest("a Bundle entry cannot be a batch or transaction").response()
		default:
			resp = work.handle(reqs[i])
		}
		if tx && resp.status >= 400 {
			return failedTransaction(i, resp)
		}
		out.Entry[i] = responseEntry(v.base, reqs[i], ids[i], resp)
	}
	if tx {
		v.s.db = work.d
	}
	return v.bundleResponse(out)
}

// failedTransaction answers a transaction with the failure of entry i,
// keeping that entry's status.
func failedTransaction(i int, resp response) response {
	detail := "the transaction failed and nothing was changed"
	if oo, err := decodeObject(resp.body); err == nil {
		if issues, _ := oo["issue"].([]any); len(issues) > 0 {
			if issue, _ := issues[0].(map[string]any); issue != nil {
				d, _ := issue["diagnostics"].(string)
				detail = "entry " + strconv.Itoa(i) + ": " + d + "; " + detail
			}
		}
	}
	return fail(resp.status, "processing", "%s", detail).response()
}

// entryRequest turns a Bundle entry into the interaction it asks for.
func (v view) entryRequest(e inEntry) (request, *failure) {
	if e.Request == nil || e.Request.Method == "" || e.Request.URL == "" {
		return request{}, badRequest("entry.request.method and entry.request.url are required")
	}
	u, err := url.Parse(e.Request.URL)
	if err != nil {
		return request{}, badRequest("entry.request.url is not a URL: %v", err)
	}
	p := u.Path
	if u.IsAbs() {
		if v.base == "" || !strings.HasPrefix(e.Request.URL, v.base+"/") {
			return request{}, badRequest("entry.request.url %q is not on this server", e.Request.URL)
		}
		p = strings.TrimPrefix(u.String(), v.base)
		p, _, _ = strings.Cut(p, "?")
	}
	req := request{
		method: strings.ToUpper(e.Request.Method),
		segs:   splitPath(p),
		query:  u.Query(),
		header: http.Header{},
	}
	if e.Request.IfMatch != "" {
		req.header.Set("If-Match", e.Request.IfMatch)
	}
	switch req.method {
	case http.MethodGet, http.MethodDelete:
	case http.MethodPost, http.MethodPut:
		if len(e.Resource) == 0 {
			return req, badRequest("a %s entry needs a resource", req.method)
		}
		if req.res, err = decodeObject(e.Resource); err != nil {
			return req, badRequest("entry.resource is not a JSON resource: %v", err)
		}
	default:
		return req, fail(http.StatusMethodNotAllowed, "not-supported", "entry.request.method %s is not supported", req.method)
	}
	return req, nil
}

// responseEntry is the batch-response or transaction-response entry for
// one interaction's answer.
func responseEntry(base string, req request, id string, resp response) bundleEntry {
	e := bundleEntry{Response: &entryResponse{Status: statusLine(resp.status)}}
	if resp.status >= 400 {
		e.Response.Outcome = resp.body
		return e
	}
	e.Response.Location = resp.header.Get("Location")
	e.Response.Etag = resp.header.Get("Etag")
	if lm, err := http.ParseTime(resp.header.Get("Last-Modified")); err == nil {
		e.Response.LastModified = lm.UTC().Format(time.RFC3339)
	}
	e.Resource = resp.body
	if req.method == http.MethodPost && id != "" {
		e.FullURL = base + "/" + req.segs[0] + "/" + id
	} else if req.method == http.MethodPut && len(req.segs) == 2 {
		e.FullURL = base + "/" + req.segs[0] + "/" + req.segs[1]
	}
	return e
}

// rewriteRefs replaces every Reference.reference that names a key of refs
// with its value, in place.
func rewriteRefs(node any, refs map[string]string) {
	switch n := node.(type) {
	case map[string]any:
		for k, val := range n {
			if s, ok := val.(string); ok && k == "reference" {
				if to, ok := refs[s]; ok {
					n[k] = to
				}
				continue
			}
			rewriteRefs(val, refs)
		}
	case []any:
		for _, val := range n {
			rewriteRefs(val, refs)
		}
	}
}
