package fhir

// Interaction is the kind of a classified FHIR request. The names are the
// codes of http://hl7.org/fhir/restful-interaction, except
// InteractionSearchCompartment, which the value set folds into
// search-type: use AuditCode for the standard code.
type Interaction string

// The interactions Classify can return.
const (
	InteractionCapabilities      Interaction = "capabilities"
	InteractionRead              Interaction = "read"
	InteractionVRead             Interaction = "vread"
	InteractionUpdate            Interaction = "update"
	InteractionPatch             Interaction = "patch"
	InteractionDelete            Interaction = "delete"
	InteractionHistoryInstance   Interaction = "history-instance"
	InteractionHistoryType       Interaction = "history-type"
	InteractionHistorySystem     Interaction = "history-system"
	InteractionCreate            Interaction = "create"
	InteractionSearchType        Interaction = "search-type"
	InteractionSearchSystem      Interaction = "search-system"
	InteractionSearchCompartment Interaction = "search-compartment"
	InteractionOperation         Interaction = "operation"
	InteractionBatch             Interaction = "batch"
	InteractionTransaction       Interaction = "transaction"
)

// AuditCode is the http://hl7.org/fhir/restful-interaction code for the
// interaction (search-compartment is reported as search-type).
func (i Interaction) AuditCode() string {
	if i == InteractionSearchCompartment {
		return string(InteractionSearchType)
	}
	return string(i)
}

// IsSearch reports whether the interaction is one of the search forms.
func (i Interaction) IsSearch() bool {
	return i == InteractionSearchType || i == InteractionSearchSystem || i == InteractionSearchCompartment
}

// IsHistory reports whether the interaction is one of the history forms.
func (i Interaction) IsHistory() bool {
	return i == InteractionHistoryInstance || i == InteractionHistoryType || i == InteractionHistorySystem
}

// OperationLevel says where an operation was invoked.
type OperationLevel string

// The three levels an operation can be invoked at.
const (
	LevelSystem   OperationLevel = "system"
	LevelType     OperationLevel = "type"
	LevelInstance OperationLevel = "instance"
)

// Request is a classified FHIR REST request. Classify fills it; nobody
// modifies it afterwards, so one Request may be read by several goroutines.
type Request struct {
	Interaction Interaction
	// Method is the HTTP method, upper case.
	Method string
	// ResourceType is the type the interaction acts on or searches; empty
	// at system level. For search-compartment it is the searched type, or
	// empty for "/Patient/123/*".
	ResourceType string
	// ID and VersionID identify the instance, when there is one.
	ID        string
	VersionID string
	// CompartmentType and CompartmentID name the compartment of a
	// search-compartment ("/Patient/123/Observation": Patient, 123).
	CompartmentType string
	CompartmentID   string

	// Operation is the operation name without "$" ("everything"), and
	// OperationLevel where it was invoked.
	Operation      string
	OperationLevel OperationLevel

	// Conditional is true for a conditional create (If-None-Exist), and for
	// update, patch and delete addressed by search criteria instead of an
	// id. The criteria are in Params.
	Conditional bool

	// Params are the search parameters (search, history, conditional
	// criteria, operation parameters given in the URL or form body), in the
	// order the server receives them: URL first, then form body. Repeated
	// names are kept (they AND).
	Params []SearchParam
	// PullIns lists what the request can pull in beyond its own type.
	PullIns PullIns
	// Format is the _format parameter, if any; the gateway serves JSON only.
	Format string

	// Body is the request body (for writes, POST operations, batches).
	Body []byte
	// BodyType is the resourceType of a JSON body, empty when there is no
	// body or it is not a JSON object.
	BodyType string
	// BodyID is the id element of a JSON body.
	BodyID string
	// Patch describes a patch body; nil unless Interaction is patch.
	Patch *PatchInfo

	// Entries are the classified entries of a batch or transaction, in
	// Bundle order.
	Entries []Entry
}

// Entry is one batch or transaction entry. Exactly one of Request and Err is
// set: an entry that cannot be classified carries the refusal in Err (a
// *Error) and is answered on its own in a batch, or fails the whole
// transaction.
type Entry struct {
	Index   int
	FullURL string
	Request *Request
	Err     error
}

// PullIns lists everything a request can disclose beyond the resources of
// its own type, so that policy can authorize each of them.
type PullIns struct {
	// Include and RevInclude are the _include and _revinclude values.
	Include    []Include
	RevInclude []Include
	// Has are the _has (reverse chaining) parameters.
	Has []Has
	// Chained are the parameters with a chain ("subject:Patient.name").
	Chained []SearchParam
	// Types are the values of _type (system search and $everything).
	Types []string
	// Contained is the _contained value ("true", "both", "false"), if any.
	Contained string
	// ContainedType is the _containedType value, if any.
	ContainedType string
	// Summary is the _summary value ("count", "true", "data", ...), if any.
	Summary string
	// Elements are the _elements values, if any.
	Elements []string
	// Total is the _total value, if any.
	Total string
	// Filter, List and Query are the _filter, _list and _query values.
	// Their reach cannot be bounded by classification: a _filter
	// expression can chain into any type, _list tests membership of a List
	// resource, _query runs a server-defined named query.
	Filter []string
	List   []string
	Query  []string
}

// Include is one _include or _revinclude value: "Source:param[:Target]" or
// "*". Iterate is set for the ":iterate" (or R3 ":recurse") modifier.
type Include struct {
	Source   string
	Param    string
	Target   string
	Wildcard bool
	Iterate  bool
}

// Has is one reverse-chain parameter:
// "_has:Observation:patient:_has:AuditEvent:entity:agent=x" has two hops
// (Observation via patient, AuditEvent via entity) and the final Param
// "agent".
type Has struct {
	Hops   []HasHop
	Param  string
	Values []string
	// Target is Param parsed as a search parameter on the last hop's type;
	// a chain there ("performer:Practitioner.name") traverses more types.
	Target SearchParam
}

// HasHop is one step of a _has chain: resources of Type whose reference
// parameter Ref points at the previous step.
type HasHop struct {
	Type string
	Ref  string
}

// PatchInfo describes a PATCH body.
type PatchInfo struct {
	// Kind is "json-patch" or "fhirpath-patch".
	Kind string
	// Paths are the element paths the patch touches, as written (JSON
	// Pointers for JSON Patch, including "from"; FHIRPath paths for FHIRPath
	// Patch).
	Paths []string
	// Elements are the top-level element names those paths touch
	// ("subject" for "/subject/reference" or "Observation.subject"); an
	// empty string means the whole resource.
	Elements []string
}

// Patch kinds.
const (
	PatchJSON     = "json-patch"
	PatchFHIRPath = "fhirpath-patch"
)
