package masking

// Verdict is what a Check decides about one resource.
type Verdict int

const (
	// Keep passes the resource on to masking and output.
	Keep Verdict = iota
	// Drop leaves the resource out of the output: a Bundle entry (and its
	// fullUrl, search and response) disappears, a contained resource is
	// removed from contained, a Parameters parameter holding it is removed.
	// Dropping the top-level resource of Rewrite is a refusal (there is
	// nothing left to answer with): Rewrite returns an error with reason
	// compartment-violation. Dropping an NDJSON line omits the line.
	Drop
	// Refuse aborts the whole response: Rewrite returns an error.
	Refuse
)

// String returns keep, drop or refuse.
func (v Verdict) String() string {
	switch v {
	case Keep:
		return "keep"
	case Drop:
		return "drop"
	case Refuse:
		return "refuse"
	}
	return "unknown"
}

// Placement says where a resource was met in the response.
type Placement int

const (
	// TopLevel is the resource that is the whole response body. The envelope
	// of a top-level Bundle is never held whole and is not checked; its
	// entries are.
	TopLevel Placement = iota
	// BundleEntry is Bundle.entry.resource, at any Bundle nesting level.
	BundleEntry
	// Contained is DomainResource.contained.
	Contained
	// ParametersResource is Parameters.parameter.resource (also in parts).
	ParametersResource
	// BundleEntryOutcome is Bundle.entry.response.outcome (an
	// OperationOutcome in a batch or transaction response).
	BundleEntryOutcome
	// NDJSONLine is one line of an NDJSON body.
	NDJSONLine
)

// String returns the placement's name as used in logs and tests
// (top-level, bundle-entry, contained, ...).
func (p Placement) String() string {
	switch p {
	case TopLevel:
		return "top-level"
	case BundleEntry:
		return "bundle-entry"
	case Contained:
		return "contained"
	case ParametersResource:
		return "parameters-resource"
	case BundleEntryOutcome:
		return "bundle-entry-outcome"
	case NDJSONLine:
		return "ndjson-line"
	}
	return "unknown"
}

// Check is the authorization layer's look at every resource before it is
// masked. CheckResource is called once for every resource met (top level,
// each Bundle entry, contained, Parameters.parameter.resource, entry
// outcomes, nested Bundles and their entries), outermost first, with the
// resource's raw JSON: one complete, validated object (no duplicate keys,
// valid UTF-8, bounded depth and size) that the implementation must not
// retain or modify after it returns. A non-nil error aborts the rewrite and
// is returned wrapped as it is; Refuse without an error aborts with reason
// compartment-violation.
//
// Implementations must be safe for concurrent use if one Check is shared by
// concurrent Rewriters.
type Check interface {
	CheckResource(resourceType string, raw []byte, where Placement) (Verdict, error)
}

// CheckFunc adapts a function to Check.
type CheckFunc func(resourceType string, raw []byte, where Placement) (Verdict, error)

// CheckResource calls f.
func (f CheckFunc) CheckResource(resourceType string, raw []byte, where Placement) (Verdict, error) {
	return f(resourceType, raw, where)
}

var _ Check = CheckFunc(nil)
