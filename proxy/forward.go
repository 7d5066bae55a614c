package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fhirwall/fhirwall/audit"
	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/masking"
	"github.com/fhirwall/fhirwall/policy"
)

// copyBufferSize is the size of the buffers that carry bodies between
// upstream and agent. 64 KiB copies cost measurably less CPU per request
// than the 32 KiB default on large FHIR Bundles.
const copyBufferSize = 64 << 10

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

type bufferPool struct{}

func (bufferPool) Get() []byte  { return *(copyBuffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

// strippedRequestHeaders never reach an upstream: the agent's credential
// (the route's own replaces it), cookies, and any forwarding claims a client
// may have forged (fhirwall sets its own).
var strippedRequestHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie",
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Real-Ip", "X-Request-Id",
}

// strippedResponseHeaders never reach an agent.
var strippedResponseHeaders = []string{"Set-Cookie", "Server", "X-Powered-By"}

// exchange is what one proxied request carries through the ReverseProxy to
// its ModifyResponse hook. It is created by the route handler and read by
// the hooks; nothing else changes it.
type exchange struct {
	// upstreamPath is the escaped path below the route prefix.
	upstreamPath string
	// rawQuery replaces the agent's query (it may have been narrowed).
	rawQuery string
	// body replaces the agent's body when it had to be read to classify.
	body []byte
	// filter rewrites the response body (masking, post-filter, links). It
	// runs in ModifyResponse; an error there refuses the response.
	filter func(*http.Response) error
	// ifMatch, when set, replaces the agent's If-Match (the version a
	// prefetch checked).
	ifMatch string
	// filterErr is the filter's refusal, when it refused the response
	// before or during the stream.
	filterErr error
	// wait, when set, blocks until a streaming filter has finished, so
	// its summary can be read.
	wait func()
	// summary, when set, adds what the filter saw (patients, resources,
	// masks) to the audit record; it is called after wait.
	summary func(*audit.Access)
	// sum is what the filter saw, valid after wait.
	sum masking.Summary
	// upstreamStatus and upstreamErr are set by the hooks for the audit.
	upstreamStatus int
	upstreamErr    error
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// forwarder sends requests to one route's upstream.
type forwarder struct {
	upstream   *url.URL
	publicBase string // the route's public base, e.g. https://gw.example.org/fhir
	credential string // "Bearer ..." for the upstream, or ""
	fhirRoute  bool
	rp         *httputil.ReverseProxy
}

func newForwarder(cfg *policy.Config, rc policy.RouteConfig, transport http.RoundTripper) (*forwarder, error) {
	u, err := url.Parse(rc.Upstream)
	if err != nil {
		return nil, err
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	f := &forwarder{
		upstream:   u,
		publicBase: strings.TrimSuffix(cfg.PublicBaseURL, "/") + rc.Prefix,
		fhirRoute:  rc.Kind == "fhir",
	}
	if ua := rc.UpstreamAuth; ua != nil {
		tok, err := readSecret(resolvePath(cfg, ua.BearerTokenFile), ua.BearerTokenEnv)
		if err != nil {
			return nil, err
		}
		f.credential = "Bearer " + tok
	}
	f.rp = &httputil.ReverseProxy{
		Rewrite:        f.rewrite,
		Transport:      transport,
		BufferPool:     bufferPool{},
		ModifyResponse: f.modifyResponse,
		ErrorHandler:   f.errorHandler,
		ErrorLog:       nil,
	}
	return f, nil
}

// readSecret reads an upstream credential from a file or the environment.
func readSecret(file, env string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return "", errors.New("upstream credential file " + file + " is empty")
		}
		return s, nil
	}
	s := strings.TrimSpace(os.Getenv(env))
	if s == "" {
		return "", errors.New("environment variable " + env + " is empty")
	}
	return s, nil
}

// rewrite builds the upstream request. Hop-by-hop headers, including any a
// client listed in Connection, are already gone from Out when it runs, so
// nothing set here can be stripped by the client.
func (f *forwarder) rewrite(pr *httputil.ProxyRequest) {
	x := exchangeFrom(pr.In.Context())
	out := pr.Out
	for _, h := range strippedRequestHeaders {
		out.Header.Del(h)
	}
	target := *f.upstream
	out.URL.Path, out.URL.RawPath = "", ""
	if p, err := url.PathUnescape(x.upstreamPath); err == nil {
		out.URL.Path = p
		out.URL.RawPath = x.upstreamPath
	}
	pr.SetURL(&target)
	out.URL.RawQuery = x.rawQuery
	if x.body != nil {
		out.Body = io.NopCloser(bytes.NewReader(x.body))
		out.ContentLength = int64(len(x.body))
		out.GetBody = nil
	}
	pr.SetXForwarded()
	out.Header.Set("X-Forwarded-Prefix", strings.TrimPrefix(f.publicBase, f.publicOrigin()))
	out.Header.Set("X-Request-Id", requestIDFrom(pr.In.Context()))
	if f.credential != "" {
		out.Header.Set("Authorization", f.credential)
	}
	if x.ifMatch != "" {
		out.Header.Set("If-Match", x.ifMatch)
	}
	if f.fhirRoute {
		// Only JSON can be masked; identity encoding keeps the masker
		// reading what the upstream wrote.
		out.Header.Set("Accept", "application/fhir+json")
		out.Header.Set("Accept-Encoding", "identity")
	}
}

func (f *forwarder) publicOrigin() string {
	u, err := url.Parse(f.publicBase)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// modifyResponse cleans the upstream's headers and runs the route's body
// filter. An error refuses the response: ReverseProxy then calls
// errorHandler and nothing of the upstream body reaches the agent.
func (f *forwarder) modifyResponse(resp *http.Response) error {
	x := exchangeFrom(resp.Request.Context())
	x.upstreamStatus = resp.StatusCode
	for _, h := range strippedResponseHeaders {
		resp.Header.Del(h)
	}
	// Patient data must not sit in shared caches or be sniffed into
	// another type.
	resp.Header.Set("Cache-Control", "no-store")
	resp.Header.Set("X-Content-Type-Options", "nosniff")
	for _, h := range []string{"Location", "Content-Location"} {
		if v := resp.Header.Get(h); v != "" {
			resp.Header.Set(h, f.rewriteURL(v))
		}
	}
	if x.filter != nil {
		return x.filter(resp)
	}
	return nil
}

// rewriteURL replaces the upstream base of an absolute URL with the public
// base. A URL on another host is returned unchanged; one on the upstream
// host but outside its base is reduced to the public base's origin so the
// internal host never shows.
func (f *forwarder) rewriteURL(v string) string {
	base := f.upstream.String()
	if v == base || strings.HasPrefix(v, base+"/") || strings.HasPrefix(v, base+"?") {
		return f.publicBase + v[len(base):]
	}
	u, err := url.Parse(v)
	if err != nil || !u.IsAbs() {
		return v
	}
	if strings.EqualFold(u.Host, f.upstream.Host) {
		return f.publicBase
	}
	return v
}

// errorHandler answers a failed exchange with an OperationOutcome. The
// agent learns that the upstream failed, never how (no internal hosts or
// error strings).
func (f *forwarder) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	x := exchangeFrom(r.Context())
	if x != nil {
		x.upstreamErr = err
	}
	var fe *fhir.Error
	switch {
	case errors.As(err, &fe):
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The agent hung up (its request's context ends with the
		// connection): the upstream did nothing wrong, and the record
		// and the failure figures must not say it did. Nobody reads
		// this answer.
		fe = fhir.Wrap(fhir.ReasonClientGone, err, "the client went away before the answer")
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		fe = fhir.Wrap(fhir.ReasonUpstreamTimeout, err, "the upstream server did not answer in time")
	case errors.Is(err, context.Canceled):
		fe = fhir.Wrap(fhir.ReasonUpstreamUnavailable, err, "the request was cancelled")
	default:
		fe = fhir.Wrap(fhir.ReasonUpstreamUnavailable, err, "the upstream server could not be reached")
	}
	if x != nil {
		x.upstreamErr = fe
	}
	fhir.WriteError(w, fe)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// newTransport is the upstream transport: bounded dials and header waits,
// large buffers, no transparent decompression (the masker must see what it
// masks and ask for identity itself).
func newTransport(t policy.TimeoutsConfig) *http.Transport {
	d := &net.Dialer{Timeout: t.UpstreamDial.D(5 * time.Second), KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: t.UpstreamHeader.D(60 * time.Second),
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		WriteBufferSize:       copyBufferSize,
		ReadBufferSize:        copyBufferSize,
	}
}
