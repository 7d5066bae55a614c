package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/fhirwall/fhirwall/audit"
	"github.com/fhirwall/fhirwall/fhir"
	"github.com/fhirwall/fhirwall/guard"
	"github.com/fhirwall/fhirwall/policy"
)

// serveReady reports whether every dependency a request needs can be
// reached: the audit store, the guard's shared state and every issuer's
// keys. Not ready means requests would be refused.
func (rt *runtime) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]error{
		"audit":  rt.g.deps.Audit.Ready(ctx),
		"guard":  rt.g.deps.Guard.Ready(ctx),
		"issuer": rt.authn.Ready(ctx),
	}
	status := http.StatusOK
	out := map[string]string{}
	for name, err := range checks {
		if err != nil {
			status = http.StatusServiceUnavailable
			out[name] = "unavailable"
			continue
		}
		out[name] = "ok"
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(out)
}

// refuseUnrouted answers (and audits) a request for a path no route serves.
func (rt *runtime) refuseUnrouted(w http.ResponseWriter, r *http.Request) {
	c := rt.begin(w, r, "")
	c.refuse(fhir.Errorf(fhir.ReasonNotFound, "no route serves this path"))
}

// serveSMARTConfiguration answers SMART App Launch discovery for a FHIR
// route. It is public, as the specification requires, and says what
// fhirwall accepts: asymmetric client authentication, SMART v1 and v2
// permissions.
func (rt *runtime) serveSMARTConfiguration(w http.ResponseWriter, r *http.Request, rc policy.RouteConfig) {
	var algs []string
	for _, is := range rt.cfg.Auth.Issuers {
		algs = appendNew(algs, is.Algorithms...)
	}
	var scopes []string
	for _, name := range rt.cfg.RoleNames() {
		scopes = appendNew(scopes, rt.cfg.Roles[name].Scopes...)
	}
	doc := map[string]any{
		"issuer":                                rt.cfg.Auth.Issuers[0].Issuer,
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": algs,
		"scopes_supported": scopes,
		"capabilities": []string{
			"client-confidential-asymmetric", "permission-v1", "permission-v2",
			"permission-patient", "permission-user",
		},
	}
	if u := rt.cfg.Auth.Issuers[0].JWKSURL; u != "" {
		doc["jwks_uri"] = u
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(doc)
}

// serveAudit is the auditor API: authenticated, restricted to agents whose
// effective scopes grant system/AuditEvent.rs, and itself audited by the
// audit log's handler.
func (rt *runtime) serveAudit(w http.ResponseWriter, r *http.Request) {
	c := rt.begin(w, r, "audit")
	if err := c.authenticate(); err != nil {
		c.refuse(err)
		return
	}
	if err := rt.mayReadAudit(c); err != nil {
		c.refuse(err)
		return
	}
	ctx := audit.WithReader(r.Context(), audit.Reader{
		AgentID:    c.principal.AgentID,
		ClientID:   c.principal.ClientID,
		JTI:        c.principal.JTI,
		Roles:      c.grant.roles,
		SourceAddr: c.acc.SourceAddr,
	})
	c.done = true // the audit handler records the read itself
	rt.g.deps.Audit.Handler("/audit").ServeHTTP(w, r.WithContext(ctx))
}

// adminRequest is the body of /admin/revoke and /admin/restore.
type adminRequest struct {
	Agent  string `json:"agent"`
	JTI    string `json:"jti"`
	Reason string `json:"reason"`
}

// serveAdmin is the admin API. Only agents with an admin role reach it, and
// every action is audited.
func (rt *runtime) serveAdmin(w http.ResponseWriter, r *http.Request) {
	c := rt.begin(w, r, "admin")
	c.acc.Interaction = "operation"
	if err := c.authenticate(); err != nil {
		c.refuse(err)
		return
	}
	if !c.grant.admin {
		c.refuse(fhir.Errorf(fhir.ReasonScopeMissing, "the admin API needs an admin role"))
		return
	}
	action := strings.TrimPrefix(r.URL.Path, "/admin/")
	g := rt.g.deps.Guard
	ctx := r.Context()
	var do func() (any, error)
	switch {
	case action == "revocations" && r.Method == http.MethodGet:
		do = func() (any, error) { return g.Revocations(ctx) }
	case (action == "revoke" || action == "restore") && r.Method == http.MethodPost:
		var req adminRequest
		body, rerr := readBody(r, 64<<10)
		if rerr == nil {
			rerr = json.Unmarshal(body, &req)
		}
		if rerr != nil || (req.Agent == "" && req.JTI == "") {
			c.refuse(fhir.Errorf(fhir.ReasonRequestInvalid, `send {"agent": "...", "jti": "...", "reason": "..."}`))
			return
		}
		if req.Agent != "" {
			if _, ok := rt.cfg.Agent(req.Agent); !ok {
				c.refuse(fhir.Errorf(fhir.ReasonRequestInvalid, "agent %q is not registered", req.Agent))
				return
			}
		}
		c.acc.ResourceType = "Agent"
		c.acc.ResourceID = req.Agent
		do = func() (any, error) {
			var err error
			status := action + "d"
			if action == "revoke" {
				err = g.Revoke(ctx, guard.Revocation{Agent: req.Agent, JTI: req.JTI, Reason: req.Reason, By: c.principal.AgentID, At: time.Now()})
				if errors.Is(err, guard.ErrNotPersisted) {
					// In force here; saving is retried. A kill switch
					// is never weaker for a full disk.
					rt.g.deps.Logger.Error("revocation not yet persisted", "agent", req.Agent, "error", err.Error())
					status, err = "revoked on this instance; not yet saved, retrying", nil
				}
			} else {
				err = g.Restore(ctx, req.Agent, req.JTI)
			}
			return map[string]string{"status": status, "agent": req.Agent, "jti": req.JTI}, err
		}
	case action == "reload" && r.Method == http.MethodPost:
		do = func() (any, error) {
			err := rt.g.reloadFromFile(ctx)
			return map[string]string{"status": "reloaded", "policy": rt.g.Config().Version}, err
		}
	default:
		c.refuse(fhir.Errorf(fhir.ReasonNotFound, "no such admin action"))
		return
	}
	// The intent is durable before the action takes effect: an admin
	// action that cannot be recorded does not happen.
	pending, err := rt.g.deps.Audit.Intent(c.auditCtx(), &c.acc)
	if err != nil {
		c.refuse(fhir.Wrap(fhir.ReasonAuditUnavailable, err, "the admin action cannot be recorded, so it is not performed"))
		return
	}
	x := &exchange{}
	result, err := do()
	if err != nil {
		x.upstreamErr = err
		c.acc.Decision = audit.DecisionAllow
		fhir.WriteError(c.w, err)
	} else {
		c.w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(c.w).Encode(result)
	}
	c.complete(pending, x, false)
}
