package proxy

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync"

	"github.com/fhirwall/fhirwall/audit"
	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/masking"
)

// bufferedResponseLimit is the largest upstream body of unknown shape
// filtered whole before the status line is sent (a single resource, as a
// read returns, is always filtered whole: the rewriter bounds it by
// masking.max_resource_bytes). Below it a refusal found in the body (another
// patient's record, an unmaskable value) becomes a clean OperationOutcome;
// above it the body streams and a refusal aborts the connection mid-way,
// so no agent ever reads a body that was not filtered.
const bufferedResponseLimit = 1 << 20

// filteredBodies recycles the buffers of responses filtered whole. Under a
// load of 200 KB searches they were the largest source of garbage (one
// body-sized allocation per request), and so of GC work and heap peaks.
var filteredBodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// recycledBodyLimit is the largest buffer kept for reuse: a body filtered
// whole is at most bufferedResponseLimit unless it is a single resource,
// whose rare large buffers are left to the collector rather than pinned.
const recycledBodyLimit = bufferedResponseLimit + 4<<10

func recycle(buf *bytes.Buffer) {
	if buf.Cap() <= recycledBodyLimit {
		buf.Reset()
		filteredBodies.Put(buf)
	}
}

// filteredBody is the body of a response filtered whole. Close hands its
// buffer back for reuse: nothing reads it after (ReverseProxy closes the
// body once it has copied it, or given up on the agent).
type filteredBody struct{ buf *bytes.Buffer }

func (b *filteredBody) Read(p []byte) (int, error) {
	if b.buf == nil {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.buf.Read(p)
}

func (b *filteredBody) Close() error {
	if b.buf != nil {
		recycle(b.buf)
		b.buf = nil
	}
	return nil
}

// responseFilter filters and masks the responses of one FHIR route.
type responseFilter struct {
	masks *masking.Set
}

// attach installs the response filter of one exchange.
func (f *responseFilter) attach(x *exchange, c *call, az *authorization) {
	x.filter = func(resp *http.Response) error {
		err := f.filter(x, c, az, resp)
		if err != nil {
			x.filterErr = err
			if az.hideExistence && isRefusalOfRead(err) {
				// No existence oracle: a record outside the patient's
				// compartment answers exactly as a missing one does. The
				// audit keeps the real reason.
				return notFound()
			}
		}
		return err
	}
}

func notFound() error {
	return fhir.Errorf(fhir.ReasonNotFound, "no such resource is available to this agent")
}

func isRefusalOfRead(err error) bool {
	switch fhir.ReasonOf(err) {
	case fhir.ReasonCompartmentViolation, fhir.ReasonScopeMissing, fhir.ReasonNotFound:
		return true
	}
	return false
}

// isJSONType and isNDJSONType are the only bodies fhirwall passes.
func bodyKind(ct string) (json, ndjson bool) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, false
	}
	switch mt {
	case "application/fhir+json", "application/json", "application/json+fhir":
		return true, false
	case "application/fhir+ndjson", "application/ndjson", "application/x-ndjson":
		return false, true
	}
	return false, false
}

func (f *responseFilter) filter(x *exchange, c *call, az *authorization, resp *http.Response) error {
	if az.hideExistence && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone) {
		resp.Body.Close()
		return notFound()
	}
	if resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified ||
		c.r.Method == http.MethodHead || resp.ContentLength == 0 {
		return nil
	}
	json, ndjson := bodyKind(resp.Header.Get("Content-Type"))
	if !json && !ndjson {
		resp.Body.Close()
		return fhir.Errorf(fhir.ReasonResponseUnmaskable, "the upstream answered with a body that is not FHIR JSON")
	}
	src, err := masking.DecodeBody(resp.Header.Get("Content-Encoding"), resp.Body)
	if err != nil {
		resp.Body.Close()
		return err
	}
	rw, err := f.masks.Rewriter(az.profiles, az.check)
	if err != nil {
		resp.Body.Close()
		return fhir.Wrap(fhir.ReasonInternal, err, "")
	}
	if az.disclosed != nil {
		// The list of what a large Bundle disclosed goes to the audit as
		// the stream goes, not into memory.
		rw.OnResources(func(refs []masking.ResourceRef) {
			az.disclosed.addResources(auditRefs(refs)...)
		})
	}
	rewrite := rw.Rewrite
	ct := fhir.ContentTypeJSON
	if ndjson {
		rewrite = rw.RewriteNDJSON
		ct = "application/fhir+ndjson"
	}
	h := resp.Header
	h.Set("Content-Type", ct)
	for _, k := range []string{"Content-Encoding", "Content-Length", "Content-Md5", "Digest", "Repr-Digest"} {
		h.Del(k)
	}
	x.summary = func(a *audit.Access) { az.summarize(a, x.sum) }

	if az.single || (resp.ContentLength > 0 && resp.ContentLength <= bufferedResponseLimit) {
		buf := filteredBodies.Get().(*bytes.Buffer)
		if resp.ContentLength > 0 && resp.ContentLength <= bufferedResponseLimit {
			// Masking rarely grows a body: at most one allocation, not
			// a doubling series. Only up to the limit: a single
			// resource may claim any length, and the rewriter, not the
			// upstream's header, bounds what is read.
			buf.Grow(int(resp.ContentLength) + 512)
		}
		sum, err := rewrite(buf, src)
		resp.Body.Close()
		x.sum = sum
		if err != nil {
			recycle(buf)
			return err
		}
		resp.ContentLength = int64(buf.Len())
		h.Set("Content-Length", strconv.Itoa(buf.Len()))
		resp.Body = &filteredBody{buf: buf}
		return nil
	}

	// Stream: the rewriter writes into a pipe the ReverseProxy copies
	// from. A rewrite error closes the pipe with that error, which makes
	// ReverseProxy abort the response.
	pr, pw := io.Pipe()
	done := make(chan struct{})
	upstream := resp.Body
	go func() {
		defer close(done)
		sum, err := rewrite(pw, src)
		x.sum = sum
		if err != nil {
			x.filterErr = err
		}
		upstream.Close()
		pw.CloseWithError(err)
	}()
	x.wait = func() { pr.Close(); <-done }
	resp.Body = pr
	resp.ContentLength = -1
	return nil
}
