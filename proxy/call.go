package proxy

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/fhirwall/fhirwall/audit"
	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/policy"
)

// call is one agent request on its way through the pipeline. It gathers
// what the audit record, the access log and the metrics need, and it is the
// only place that answers refusals, so every refusal is audited the same
// way.
type call struct {
	rt        *runtime
	w         *responseRecorder
	r         *http.Request
	route     string
	start     time.Time
	principal *policy.Principal
	grant     *agentGrant
	scopes    *policy.ScopeSet // effective scopes, once computed
	acc       audit.Access
	done      bool
}

func (rt *runtime) begin(w http.ResponseWriter, r *http.Request, route string) *call {
	c := &call{
		rt:    rt,
		w:     newResponseRecorder(w),
		r:     r,
		route: route,
		start: time.Now(),
	}
	c.acc = audit.Access{
		RequestID:     requestIDFrom(r.Context()),
		Start:         c.start,
		Agent:         audit.Agent{ID: audit.Unauthenticated},
		SourceAddr:    clientAddr(r),
		Route:         route,
		Method:        r.Method,
		Path:          r.URL.EscapedPath(),
		Query:         r.URL.RawQuery,
		Decision:      audit.DecisionAllow,
		PolicyVersion: rt.cfg.Version,
	}
	return c
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// auditCtx is detached from the client's request: an agent that hangs up
// must not cancel its own audit record. The audit log bounds the write with
// its own timeout.
func (c *call) auditCtx() context.Context { return context.WithoutCancel(c.r.Context()) }

// authenticate establishes who is calling: a valid token from a trusted
// issuer naming a registered agent that is not revoked and within its rate.
func (c *call) authenticate() error {
	p, err := c.rt.authn.Authenticate(c.r.Context(), c.r.Header)
	if err != nil {
		return err
	}
	c.principal = p
	c.grant = c.rt.agents[p.AgentID]
	if c.grant.issuer != "" && c.grant.issuer != p.Issuer {
		return fhir.Errorf(fhir.ReasonAgentUnknown, "the agent is not registered with this token's issuer")
	}
	c.acc.Agent = audit.Agent{
		ID:           p.AgentID,
		ClientID:     p.ClientID,
		Issuer:       p.Issuer,
		JTI:          p.JTI,
		Roles:        c.grant.roles,
		PurposeOfUse: p.PurposeOfUse,
	}
	g := c.rt.g.deps.Guard
	if err := g.CheckRevoked(c.r.Context(), p.AgentID, p.JTI); err != nil {
		return err
	}
	if retry, err := g.AllowRequest(c.r.Context(), p.AgentID, c.grant.limits); err != nil {
		if retry > 0 {
			c.w.Header().Set("Retry-After", itoaCeilSeconds(retry))
		}
		return err
	}
	return nil
}

func itoaCeilSeconds(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

// refuse answers the request with err's OperationOutcome and records the
// refusal. The record is attempted even when the refusal is itself
// audit-unavailable: a store that recovered in between still gets it.
func (c *call) refuse(err error) { c.refuseAudited(err, fhir.ReasonOf(err)) }

// refuseAudited answers with err but audits reason: a refused read the
// agent must not tell from a missing record gets a neutral not-found, while
// the auditor sees the real reason.
func (c *call) refuseAudited(err error, reason fhir.Reason) {
	c.acc.Decision = audit.DecisionDeny
	c.acc.Reason = string(reason)
	if fhir.ReasonOf(err).Status() == http.StatusUnauthorized {
		c.w.Header().Set("WWW-Authenticate", policy.WWWAuthenticate(err))
	}
	fhir.WriteError(c.w, err)
	c.finishAccess()
	if rerr := c.rt.g.deps.Audit.Record(c.auditCtx(), &c.acc); rerr != nil {
		c.rt.g.deps.Logger.Error("audit record of a refusal failed",
			"request_id", c.acc.RequestID, "reason", c.acc.Reason, "error", rerr.Error())
	}
	c.log()
}

// finishAccess fills the parts of the record known once the response ends.
func (c *call) finishAccess() {
	c.acc.End = time.Now()
	c.acc.Status = c.w.status
	c.acc.ResponseBytes = c.w.bytes
	c.acc.ResponseSHA256 = c.w.sha256Hex()
}

func (c *call) log() {
	if c.done {
		return
	}
	c.done = true
	c.rt.g.metrics.observe(c.rt.g.deps.Logger, accessLog{
		RequestID:   c.acc.RequestID,
		Route:       c.route,
		Agent:       c.acc.Agent.ID,
		Interaction: c.acc.Interaction,
		Type:        c.acc.ResourceType,
		Decision:    c.acc.Decision,
		Reason:      c.acc.Reason,
		Status:      c.w.status,
		Bytes:       c.w.bytes,
		Duration:    time.Since(c.start),
	})
}

// intent writes the durable record of the attempt. No intent, nothing
// goes upstream: the agent gets 503 audit-unavailable (and ok is false).
func (c *call) intent() (pending *audit.Pending, ok bool) {
	pending, err := c.rt.g.deps.Audit.Intent(c.auditCtx(), &c.acc)
	if err != nil {
		c.refuse(fhir.Wrap(fhir.ReasonAuditUnavailable, err, "the access cannot be recorded, so it is refused"))
		return nil, false
	}
	return pending, true
}

// refusePending refuses a request whose intent is already recorded (a
// check that needed the upstream, such as a write's prefetch, said no):
// the agent gets answer, the completion record the real reason.
func (c *call) refusePending(pending *audit.Pending, answer error, reason fhir.Reason) {
	c.acc.Decision = audit.DecisionDeny
	c.acc.Reason = string(reason)
	fhir.WriteError(c.w, answer)
	c.complete(pending, &exchange{}, false)
}

// forward writes the intent record, then sends the request upstream
// through fw (see forwardPending).
func (c *call) forward(fw *forwarder, x *exchange) {
	if pending, ok := c.intent(); ok {
		c.forwardPending(pending, fw, x)
	}
}

// forwardPending sends the request upstream through fw once its intent
// record is durable, and completes the record when the response ends.
func (c *call) forwardPending(pending *audit.Pending, fw *forwarder, x *exchange) {
	defer func() {
		aborted := recover()
		c.complete(pending, x, aborted != nil)
		if aborted != nil {
			// ReverseProxy aborts a response whose body failed mid-stream
			// (upstream gone, a refusal found by the filter, client gone);
			// net/http then closes the connection, so the agent cannot take
			// a truncated body for a whole one.
			panic(aborted)
		}
	}()
	ctx := context.WithValue(c.r.Context(), exchangeKey{}, x)
	fw.rp.ServeHTTP(c.w, c.r.WithContext(ctx))
}

// complete writes the completion record of a forwarded request: what was
// sent, to whom, what was masked, and how it ended.
func (c *call) complete(pending *audit.Pending, x *exchange, aborted bool) {
	if x.wait != nil {
		x.wait() // the streaming filter has finished: x.sum and x.filterErr are final
	}
	c.finishAccess()
	fail := func(reason fhir.Reason, detail string) {
		c.acc.Failed = true
		c.acc.FailureDetail = detail
		if c.acc.Reason == "" || c.acc.Decision == audit.DecisionAllow {
			c.acc.Reason = string(reason)
		}
	}
	switch {
	case x.filterErr != nil:
		r := fhir.ReasonOf(x.filterErr)
		if aborted {
			fail(r, "response refused mid-stream: "+string(r))
		} else {
			fail(r, "response refused: "+string(r))
		}
	case x.upstreamErr != nil:
		if r := fhir.ReasonOf(x.upstreamErr); r == fhir.ReasonClientGone {
			fail(r, "client went away before the answer")
		} else {
			fail(r, "upstream failed: "+string(r))
		}
	case aborted && c.r.Context().Err() != nil:
		fail(fhir.ReasonClientGone, "client went away mid-stream")
	case aborted:
		fail(fhir.ReasonUpstreamUnavailable, "response aborted mid-stream")
	}
	c.log()
	// The response has been sent; the agent need not wait for the
	// completion's fsync. The intent is already durable, so a completion
	// lost to a crash is closed as incomplete at the next start: the
	// record never claims less than what may have been disclosed. Close
	// waits for completions in flight.
	g := c.rt.g
	g.completions.Add(1)
	acc := c.acc
	ctx := c.auditCtx()
	go func() {
		defer g.completions.Done()
		// What the response disclosed (patients, resources, masks) is
		// gathered here, off the agent's connection: a Bundle of a
		// million entries takes a thousand continuation events.
		if x.summary != nil {
			x.summary(&acc)
		}
		if err := pending.Complete(ctx, &acc); err != nil {
			g.deps.Logger.Error("audit completion failed",
				"request_id", acc.RequestID, "error", err.Error())
		}
	}()
}
