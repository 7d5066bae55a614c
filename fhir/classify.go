package fhir

import (
	"mime"
	"net/http"
	"net/textproto"
	"strings"
)

// Classifier turns HTTP requests into FHIR interactions. The zero value is
// ready to use and refuses every absolute URL inside a batch or transaction.
// A Classifier is immutable after first use and safe for concurrent use.
type Classifier struct {
	// Bases are the absolute base URLs (fhirwall's public base for the
	// route and the upstream's base) that batch and transaction entries may
	// use in request.url, e.g. "https://gw.example.org/fhir". An entry whose
	// URL is absolute and starts with none of them (at a "/" boundary) is
	// refused: it could address a server or route the decision was not made
	// for.
	Bases []string
}

// Classify classifies a request with the zero Classifier; see
// Classifier.Classify.
func Classify(method, path, rawQuery string, header http.Header, body []byte) (*Request, error) {
	return Classifier{}.Classify(method, path, rawQuery, header, body)
}

// Classify turns one HTTP request into a typed FHIR interaction.
//
// path is the request path below the FHIR base ("/Patient/123/_history/2"),
// still percent-encoded; rawQuery is the URL query without "?"; body is the
// whole request body (the gateway bounds its size). Classify fails closed:
// every request it cannot classify exactly is refused with a *Error whose
// reason is path-invalid (path tricks), request-invalid (bad parameters,
// JSON or Bundle), format-not-acceptable (a non-JSON body) or
// interaction-unsupported. It never panics and never modifies its inputs.
func (c Classifier) Classify(method, path, rawQuery string, header http.Header, body []byte) (*Request, error) {
	return c.classify(method, path, rawQuery, header, body, 0)
}

// methodOverrideHeaders make some servers (HAPI among them) run another
// method than the one fhirwall authorized; a request carrying one is
// refused. The names are in canonical form for a direct map lookup.
var methodOverrideHeaders = []string{
	textproto.CanonicalMIMEHeaderKey("X-HTTP-Method-Override"),
	textproto.CanonicalMIMEHeaderKey("X-HTTP-Method"),
	textproto.CanonicalMIMEHeaderKey("X-Method-Override"),
}

func (c Classifier) classify(method, path, rawQuery string, header http.Header, body []byte, depth int) (*Request, error) {
	for _, h := range methodOverrideHeaders {
		if len(header[h]) > 0 {
			return nil, Errorf(ReasonRequestInvalid, "method override headers are not accepted")
		}
	}
	segs, err := splitPath(path)
	if err != nil {
		return nil, err
	}
	r := &Request{Method: method}
	if r.Params, err = parseQuery(nil, rawQuery); err != nil {
		return nil, err
	}
	if err := r.route(segs, rawQuery != ""); err != nil {
		return nil, err
	}
	// Entry bodies are slices of a Bundle checked whole at depth 0.
	if err := r.readBody(header, body, depth > 0); err != nil {
		return nil, err
	}
	if err := r.checkBodyMatchesPath(); err != nil {
		return nil, err
	}
	if ine := header.Get("If-None-Exist"); ine != "" {
		if r.Interaction != InteractionCreate {
			return nil, Errorf(ReasonRequestInvalid, "If-None-Exist is only meaningful on create")
		}
		r.Conditional = true
		ine = strings.TrimPrefix(ine, r.ResourceType+"?")
		if strings.ContainsAny(ine, "?#") {
			// "Patient?identifier=1" on an Observation create: servers
			// disagree on what such criteria mean.
			return nil, Errorf(ReasonRequestInvalid, "If-None-Exist must hold search parameters of the created type only")
		}
		if r.Params, err = parseQuery(r.Params, ine); err != nil {
			return nil, err
		}
	}
	if err := collectPullIns(r); err != nil {
		return nil, err
	}
	switch r.Interaction {
	case InteractionBatch, InteractionTransaction:
		if depth > 0 {
			return nil, Errorf(ReasonNotSupported, "a batch or transaction cannot be nested in another")
		}
		if err := c.classifyEntries(r); err != nil {
			return nil, err
		}
	case InteractionPatch:
		if r.Patch, err = parsePatch(r.ResourceType, header, body); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// route sets the interaction and the addressed type, id, version,
// compartment or operation from the path segments and the method.
func (r *Request) route(segs []string, hasQuery bool) error {
	m := r.Method
	n := len(segs)
	if n == 0 {
		switch m {
		case http.MethodGet:
			r.Interaction = InteractionSearchSystem
		case http.MethodPost:
			// batch or transaction: decided by the Bundle's type in readBody.
			r.Interaction = InteractionBatch
		default:
			return methodError(m, "the base")
		}
		return nil
	}
	first := segs[0]
	if n == 1 {
		switch {
		case first == "metadata":
			return r.expect(m, InteractionCapabilities, http.MethodGet)
		case first == "_history":
			return r.expect(m, InteractionHistorySystem, http.MethodGet)
		case first == "_search":
			return r.expect(m, InteractionSearchSystem, http.MethodPost)
		case first[0] == '$':
			return r.operation(first, LevelSystem)
		}
		if err := r.setType(first); err != nil {
			return err
		}
		switch m {
		case http.MethodGet:
			r.Interaction = InteractionSearchType
		case http.MethodPost:
			r.Interaction = InteractionCreate
		case http.MethodPut, http.MethodDelete, http.MethodPatch:
			if !hasQuery {
				return Errorf(ReasonRequestInvalid, "%s on a type needs search criteria (conditional %s)", m, strings.ToLower(m))
			}
			r.Conditional = true
			r.Interaction = map[string]Interaction{
				http.MethodPut: InteractionUpdate, http.MethodDelete: InteractionDelete, http.MethodPatch: InteractionPatch,
			}[m]
		default:
			return methodError(m, "a type")
		}
		return nil
	}
	if err := r.setType(first); err != nil {
		return err
	}
	second := segs[1]
	if n == 2 {
		switch {
		case second == "_search":
			return r.expect(m, InteractionSearchType, http.MethodPost, http.MethodGet)
		case second == "_history":
			return r.expect(m, InteractionHistoryType, http.MethodGet)
		case second[0] == '$':
			return r.operation(second, LevelType)
		}
		if err := r.setID(second); err != nil {
			return err
		}
		switch m {
		case http.MethodGet:
			r.Interaction = InteractionRead
		case http.MethodPut:
			r.Interaction = InteractionUpdate
		case http.MethodPatch:
			r.Interaction = InteractionPatch
		case http.MethodDelete:
			r.Interaction = InteractionDelete
		default:
			return methodError(m, "an instance")
		}
		return nil
	}
	if err := r.setID(second); err != nil {
		return err
	}
	third := segs[2]
	switch {
	case n == 3 && third == "_history":
		return r.expect(m, InteractionHistoryInstance, http.MethodGet)
	case n == 3 && third[0] == '$':
		return r.operation(third, LevelInstance)
	case n == 4 && third == "_history":
		if !validID(segs[3]) {
			return Errorf(ReasonPathInvalid, "the version id is not valid")
		}
		r.VersionID = segs[3]
		return r.expect(m, InteractionVRead, http.MethodGet)
	case n == 3 || n == 4 && segs[3] == "_search":
		// Compartment search: /Patient/123/Observation[/_search] or /Patient/123/*.
		if !isCompartmentType(r.ResourceType) {
			return Errorf(ReasonPathInvalid, "%s is not a compartment type", r.ResourceType)
		}
		r.CompartmentType, r.CompartmentID = r.ResourceType, r.ID
		r.ResourceType, r.ID = "", ""
		if third != "*" {
			if err := r.setType(third); err != nil {
				return err
			}
		}
		if n == 4 {
			return r.expect(m, InteractionSearchCompartment, http.MethodPost)
		}
		return r.expect(m, InteractionSearchCompartment, http.MethodGet)
	}
	return Errorf(ReasonPathInvalid, "the path does not name a FHIR interaction")
}

// isCompartmentType reports whether t defines a compartment in R4.
func isCompartmentType(t string) bool {
	switch t {
	case "Patient", "Encounter", "RelatedPerson", "Practitioner", "Device":
		return true
	}
	return false
}

func (r *Request) expect(m string, i Interaction, allowed ...string) error {
	for _, a := range allowed {
		if m == a {
			r.Interaction = i
			return nil
		}
	}
	return methodError(m, string(i))
}

func methodError(m, what string) *Error {
	return Errorf(ReasonNotSupported, "method %s is not supported on %s", safeToken(m), what)
}

func (r *Request) setType(s string) error {
	if !IsResourceType(s) {
		return Errorf(ReasonPathInvalid, "%s is not an R4 resource type (names are case-sensitive)", safeToken(s))
	}
	r.ResourceType = s
	return nil
}

func (r *Request) setID(s string) error {
	if !validID(s) {
		return Errorf(ReasonPathInvalid, "the resource id is not valid (R4 ids are [A-Za-z0-9-.]{1,64})")
	}
	r.ID = s
	return nil
}

func (r *Request) operation(seg string, level OperationLevel) error {
	name := seg[1:]
	if !validOperationName(name) {
		return Errorf(ReasonPathInvalid, "%s is not a valid operation name", safeToken(seg))
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return methodError(r.Method, "an operation")
	}
	r.Interaction, r.Operation, r.OperationLevel = InteractionOperation, name, level
	return nil
}

// readBody checks the body against the interaction: form bodies of POST
// searches join the parameters; JSON bodies must be valid, free of
// duplicate keys and name their resourceType.
func (r *Request) readBody(header http.Header, body []byte, validated bool) error {
	isSearchPost := r.Method == http.MethodPost && (r.Interaction.IsSearch())
	if len(body) == 0 {
		switch {
		case r.Interaction == InteractionCreate || r.Interaction == InteractionUpdate || r.Interaction == InteractionPatch:
			return Errorf(ReasonRequestInvalid, "%s needs a body", r.Interaction)
		case r.Interaction == InteractionBatch:
			return Errorf(ReasonRequestInvalid, "POST to the base needs a batch or transaction Bundle")
		}
		return nil
	}
	ct := header.Get("Content-Type")
	mt, mtParams, err := mime.ParseMediaType(ct)
	if ct != "" && err != nil {
		return Wrap(ReasonRequestInvalid, err, "the Content-Type cannot be parsed")
	}
	if cs, ok := mtParams["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		// Another charset would make the upstream decode different bytes
		// than fhirwall authorized.
		return Errorf(ReasonRequestInvalid, "only UTF-8 bodies are accepted (charset=%s)", safeToken(cs))
	}
	if isSearchPost {
		if mt != "application/x-www-form-urlencoded" {
			return Errorf(ReasonRequestInvalid, "a POST search needs an application/x-www-form-urlencoded body")
		}
		var err error
		r.Params, err = parseQuery(r.Params, string(body))
		return err
	}
	switch r.Method {
	case http.MethodGet, http.MethodDelete:
		return Errorf(ReasonRequestInvalid, "a %s request must not have a body", r.Method)
	}
	switch mt {
	case "application/fhir+json", "application/json", "application/json-patch+json":
	case "application/x-www-form-urlencoded":
		if r.Interaction == InteractionOperation {
			// Operations may take simple parameters as a form body.
			var err error
			r.Params, err = parseQuery(r.Params, string(body))
			return err
		}
		return Errorf(ReasonRequestInvalid, "a form body is only accepted for searches and operations")
	case "":
		return Errorf(ReasonRequestInvalid, "a body needs a Content-Type")
	default:
		return Errorf(ReasonNotAcceptable, "only JSON bodies can be authorized (got %s)", safeToken(mt))
	}
	if mt == "application/json-patch+json" {
		if r.Interaction != InteractionPatch {
			return Errorf(ReasonRequestInvalid, "a JSON Patch body is only accepted on PATCH")
		}
		r.Body = body
		if validated {
			return nil
		}
		return checkJSON(body)
	}
	if !validated {
		if err := checkJSON(body); err != nil {
			return err
		}
	}
	r.Body = body
	r.BodyType, r.BodyID = bodyTypeAndID(body)
	if r.BodyType == "" {
		return Errorf(ReasonRequestInvalid, "the body is not a FHIR resource (no resourceType)")
	}
	if !IsResourceType(r.BodyType) {
		return Errorf(ReasonRequestInvalid, "the body's resourceType %s is not an R4 resource type", safeToken(r.BodyType))
	}
	if r.Interaction == InteractionBatch {
		bt := bundleType(body)
		switch {
		case r.BodyType != "Bundle":
			return Errorf(ReasonRequestInvalid, "POST to the base needs a Bundle, not %s", r.BodyType)
		case bt == "batch":
		case bt == "transaction":
			r.Interaction = InteractionTransaction
		default:
			return Errorf(ReasonRequestInvalid, "POST to the base needs a batch or transaction Bundle, not %s", safeToken(bt))
		}
	}
	return nil
}

// checkBodyMatchesPath refuses a create or update whose body names another
// type or id than the URL: the server would refuse it too, but fhirwall must
// not authorize one type and forward another.
func (r *Request) checkBodyMatchesPath() error {
	if r.Interaction != InteractionCreate && r.Interaction != InteractionUpdate {
		return nil
	}
	if r.BodyType != r.ResourceType {
		return Errorf(ReasonRequestInvalid, "the body is a %s, the URL names %s", r.BodyType, r.ResourceType)
	}
	if r.Interaction == InteractionUpdate && !r.Conditional && r.BodyID != r.ID {
		return Errorf(ReasonRequestInvalid, "the body's id does not match the id in the URL")
	}
	return nil
}
