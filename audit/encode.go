package audit

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
	"unicode/utf8"

	fm "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// Encoding an AuditEvent through the samply model's MarshalJSON costs tens
// of microseconds per event (reflection over wide structs, a MarshalJSON
// call and a re-scan of its output for every enum code), a sizeable share
// of the gateway's CPU since every access is recorded once or twice. The
// encoder below writes the same bytes directly.
//
// Its one contract: whenever it reports success, its output is exactly what
// ev.MarshalJSON() returns. Bodies are hashed into the chain, and which
// encoder wrote one must not show (closeUnfinished and closeAbandoned
// re-encode stored intents, tools re-encode with the samply model). It
// therefore mirrors encoding/json's rules for these models: fields in
// struct order, omitempty dropping nil pointers and empty slices only (a
// pointer to "" is kept), non-omitempty fields always written (a nil Agent
// is "agent":null), enum codes as the JSON string of their Code(),
// resourceType last (MarshalJSON adds it after the embedded event), and
// HTML-safe string escaping. Anything it does not write (the narrative,
// complex extension values, a decimal that is not a plain integer) makes
// it report failure, and encodeEvent then falls back to MarshalJSON.
// TestEncodeEventFieldCoverage checks, by reflection over the models, that
// every field is either written identically or causes that fallback.

// encodeEvent returns ev as JSON, byte for byte what ev.MarshalJSON()
// returns (and so what json.Marshal(ev) returns, as that output is already
// compact), using the hand-written encoder when it supports every field
// that is set and MarshalJSON otherwise.
func encodeEvent(ev *fm.AuditEvent) ([]byte, error) {
	bp := encodeBufs.Get().(*[]byte)
	b, ok := appendEvent((*bp)[:0], ev)
	var out []byte
	if ok {
		// The caller keeps the body (store, sinks): hand it an exactly
		// sized copy and keep the scratch buffer, whose size is a
		// good guess for the next event.
		out = bytes.Clone(b)
	}
	if cap(b) <= maxPooledEncodeBuf {
		*bp = b[:0]
		encodeBufs.Put(bp)
	}
	if !ok {
		return ev.MarshalJSON()
	}
	return out, nil
}

// encodeBufs holds scratch buffers for encodeEvent, so an event costs one
// allocation (its body) instead of a series of growing appends.
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledEncodeBuf keeps the buffer of an exceptionally large event
// (thousands of entities) from being held by the pool for good.
const maxPooledEncodeBuf = 256 << 10

// appendEvent appends the JSON encoding of ev to dst and reports whether
// it is exactly what ev.MarshalJSON() would produce. On false the contents
// of the returned slice are unspecified and the caller must fall back to
// MarshalJSON.
func appendEvent(dst []byte, ev *fm.AuditEvent) ([]byte, bool) {
	var e encoder
	b := e.event(dst, ev)
	return b, !e.failed
}

// encoder writes the JSON of the samply models. Its methods append one
// JSON value to b and return it: the buffer travels in registers rather
// than in a struct reached through a pointer, where every append would
// pay a GC write barrier. The encoder itself only records that some set
// field has no hand-written encoding.
type encoder struct {
	failed bool
}

// jsonKey writes the name of an object member, preceded by a comma unless
// it is the object's first member (a value never ends in '{', so the last
// byte tells). Member names need no escaping.
func jsonKey(b []byte, name string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

func jsonStr(b []byte, name, s string) []byte {
	return appendJSONString(jsonKey(b, name), s)
}

// jsonOptStr writes a *string member with omitempty: nil is omitted, a
// pointer to "" is not.
func jsonOptStr(b []byte, name string, s *string) []byte {
	if s == nil {
		return b
	}
	return jsonStr(b, name, *s)
}

func jsonBool(b []byte, name string, v bool) []byte {
	b = jsonKey(b, name)
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

func jsonOptBool(b []byte, name string, v *bool) []byte {
	if v == nil {
		return b
	}
	return jsonBool(b, name, *v)
}

func jsonOptInt(b []byte, name string, v *int) []byte {
	if v == nil {
		return b
	}
	return strconv.AppendInt(jsonKey(b, name), int64(*v), 10)
}

func jsonStrs(b []byte, name string, ss []string) []byte {
	if len(ss) == 0 {
		return b
	}
	b = jsonKey(b, name)
	for i, s := range ss {
		b = jsonElem(b, i)
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// jsonElem starts the i-th element of an array: the opening bracket or a
// comma.
func jsonElem(b []byte, i int) []byte {
	if i == 0 {
		return append(b, '[')
	}
	return append(b, ',')
}

// coder is the generated enum types' Code method, whose result their
// MarshalJSON writes as a JSON string ("<unknown>" out of range).
type coder interface{ Code() string }

func jsonOptCode[T coder](b []byte, name string, c *T) []byte {
	if c == nil {
		return b
	}
	return jsonStr(b, name, (*c).Code())
}

// optDecimal writes a json.Number member. encoding/json writes the number
// literally after validating it (and "" as 0); only plain integers, all
// event.go ever puts there, are written here, anything else falls back.
func (e *encoder) optDecimal(b []byte, name string, n *json.Number) []byte {
	if n == nil {
		return b
	}
	s := string(*n)
	if s == "" {
		s = "0"
	}
	if !isJSONInteger(s) {
		e.failed = true
		return b
	}
	return append(jsonKey(b, name), s...)
}

func (e *encoder) event(b []byte, ev *fm.AuditEvent) []byte {
	b = append(b, '{')
	b = jsonOptStr(b, "id", ev.Id)
	if ev.Meta != nil {
		b = e.meta(jsonKey(b, "meta"), ev.Meta)
	}
	b = jsonOptStr(b, "implicitRules", ev.ImplicitRules)
	b = jsonOptStr(b, "language", ev.Language)
	if ev.Text != nil {
		e.failed = true
	}
	b = e.extensions(b, "extension", ev.Extension)
	b = e.extensions(b, "modifierExtension", ev.ModifierExtension)
	b = e.coding(jsonKey(b, "type"), &ev.Type)
	b = e.codings(b, "subtype", ev.Subtype)
	b = jsonOptCode(b, "action", ev.Action)
	if ev.Period != nil {
		b = e.period(jsonKey(b, "period"), ev.Period)
	}
	b = jsonStr(b, "recorded", ev.Recorded)
	b = jsonOptCode(b, "outcome", ev.Outcome)
	b = jsonOptStr(b, "outcomeDesc", ev.OutcomeDesc)
	b = e.concepts(b, "purposeOfEvent", ev.PurposeOfEvent)
	b = e.agents(b, "agent", ev.Agent)
	b = e.source(jsonKey(b, "source"), &ev.Source)
	b = e.entities(b, "entity", ev.Entity)
	b = jsonStr(b, "resourceType", "AuditEvent")
	return append(b, '}')
}

func (e *encoder) agent(b []byte, a *fm.AuditEventAgent) []byte {
	b = append(b, '{')
	b = jsonOptStr(b, "id", a.Id)
	b = e.extensions(b, "extension", a.Extension)
	b = e.extensions(b, "modifierExtension", a.ModifierExtension)
	if a.Type != nil {
		b = e.concept(jsonKey(b, "type"), a.Type)
	}
	b = e.concepts(b, "role", a.Role)
	if a.Who != nil {
		b = e.reference(jsonKey(b, "who"), a.Who)
	}
	b = jsonOptStr(b, "altId", a.AltId)
	b = jsonOptStr(b, "name", a.Name)
	b = jsonBool(b, "requestor", a.Requestor)
	if a.Location != nil {
		b = e.reference(jsonKey(b, "location"), a.Location)
	}
	b = jsonStrs(b, "policy", a.Policy)
	if a.Media != nil {
		b = e.coding(jsonKey(b, "media"), a.Media)
	}
	if a.Network != nil {
		b = e.network(jsonKey(b, "network"), a.Network)
	}
	b = e.concepts(b, "purposeOfUse", a.PurposeOfUse)
	return append(b, '}')
}

func (e *encoder) network(b []byte, n *fm.AuditEventAgentNetwork) []byte {
	b = append(b, '{')
	b = jsonOptStr(b, "id", n.Id)
	b = e.extensions(b, "extension", n.Extension)
	b = e.extensions(b, "modifierExtension", n.ModifierExtension)
	b = jsonOptStr(b, "address", n.Address)
	b = jsonOptCode(b, "type", n.Type)
	return append(b, '}')
}

func (e *encoder) source(b []byte, s *fm.AuditEventSource) []byte {
	b = append(b, '{')
	b = jsonOptStr(b, "id", s.Id)
	b = e.extensions(b, "extension", s.Extension)
	b = e.extensions(b, "modifierExtension", s.ModifierExtension)
	b = jsonOptStr(b, "site", s.Site)
	b = e.reference(jsonKey(b, "observer"), &s.Observer)
	b = e.codings(b, "type", s.Type)
	return append(b, '}')
}

func (e *encoder) entity(b []byte, en *fm.AuditEventEntity) []byte {
	b = append(b, '{')
	b = jsonOptStr(b, "id", en.Id)
	b = e.extensions(b, "extension", en.Extension)
	b = e.extensions(b, "modifierExtension", en.ModifierExtension)
	if en.What != nil {
		b = e.reference(jsonKey(b, "what"), en.What)
	}
	if en.Type != nil {
		b = e.coding(jsonKey(b, "type"), en.Type)
	}
	if en.Role != nil {
		b = e.coding(jsonKey(b, "role"), en.Role)
	}
	if en.Lifecycle != nil {
		b = e.coding(jsonKey(b, "lifecycle"), en.Lifecycle)
	}
	b = e.codings(b, "securityLabel", en.SecurityLabel)
	b = jsonOptStr(b, "name", en.Name)
	b = jsonOptStr(b, "description", en.Description)
	b = jsonOptStr(b, "query", en.Query)
	b = e.details(b, "detail", en.Detail)
	return append(b, '}')
}

func (e *encoder) detail(b []byte, d *fm.AuditEventEntityDetail) []byte {
	b = append(b, '{')
	b = jsonOptStr(b, "id", d.Id)
	b = e.extensions(b, "extension", d.Extension)
	b = e.extensions(b, "modifierExtension", d.ModifierExtension)
	b = jsonStr(b, "type", d.Type)
	b = jsonStr(b, "valueString", d.ValueString)
	b = jsonStr(b, "valueBase64Binary", d.ValueBase64Binary)
	return append(b, '}')
}

func (e *encoder) meta(b []byte, m *fm.Meta) []byte {
	b = append(b, '{')
	b = jsonOptStr(b, "id", m.Id)
	b = e.extensions(b, "extension", m.Extension)
	b = jsonOptStr(b, "versionId", m.VersionId)
	b = jsonOptStr(b, "lastUpdated", m.LastUpdated)
	b = jsonOptStr(b, "source", m.Source)
	b = jsonStrs(b, "profile", m.Profile)
	b = e.codings(b, "security", m.Security)
	b = e.codings(b, "tag", m.Tag)
	return append(b, '}')
}

func (e *encoder) coding(b []byte, c *fm.Coding) []byte {
	b = append(b, '{')
	b = jsonOptStr(b, "id", c.Id)
	b = e.extensions(b, "extension", c.Extension)
	b = jsonOptStr(b, "system", c.System)
	b = jsonOptStr(b, "version", c.Version)
	b = jsonOptStr(b, "code", c.Code)
	b = jsonOptStr(b, "display", c.Display)
	b = jsonOptBool(b, "userSelected", c.UserSelected)
	return append(b, '}')
}

func (e *encoder) concept(b []byte, c *fm.CodeableConcept) []byte {
	b = append(b, '{')
	b = jsonOptStr(b, "id", c.Id)
	b = e.extensions(b, "extension", c.Extension)
	b = e.codings(b, "coding", c.Coding)
	b = jsonOptStr(b, "text", c.Text)
	return append(b, '}')
}

func (e *encoder) reference(b []byte, r *fm.Reference) []byte {
	b = append(b, '{')
	b = jsonOptStr(b, "id", r.Id)
	b = e.extensions(b, "extension", r.Extension)
	b = jsonOptStr(b, "reference", r.Reference)
	b = jsonOptStr(b, "type", r.Type)
	if r.Identifier != nil {
		b = e.identifier(jsonKey(b, "identifier"), r.Identifier)
	}
	b = jsonOptStr(b, "display", r.Display)
	return append(b, '}')
}

func (e *encoder) identifier(b []byte, id *fm.Identifier) []byte {
	b = append(b, '{')
	b = jsonOptStr(b, "id", id.Id)
	b = e.extensions(b, "extension", id.Extension)
	b = jsonOptCode(b, "use", id.Use)
	if id.Type != nil {
		b = e.concept(jsonKey(b, "type"), id.Type)
	}
	b = jsonOptStr(b, "system", id.System)
	b = jsonOptStr(b, "value", id.Value)
	if id.Period != nil {
		b = e.period(jsonKey(b, "period"), id.Period)
	}
	if id.Assigner != nil {
		b = e.reference(jsonKey(b, "assigner"), id.Assigner)
	}
	return append(b, '}')
}

func (e *encoder) period(b []byte, p *fm.Period) []byte {
	b = append(b, '{')
	b = jsonOptStr(b, "id", p.Id)
	b = e.extensions(b, "extension", p.Extension)
	b = jsonOptStr(b, "start", p.Start)
	b = jsonOptStr(b, "end", p.End)
	return append(b, '}')
}

// extension writes an Extension with a primitive value[x], the only kind
// fhirwall writes; a complex value (Address, Quantity, Reference, ...)
// falls back to MarshalJSON.
func (e *encoder) extension(b []byte, x *fm.Extension) []byte {
	b = append(b, '{')
	b = jsonOptStr(b, "id", x.Id)
	b = e.extensions(b, "extension", x.Extension)
	b = jsonStr(b, "url", x.Url)
	b = jsonOptStr(b, "valueBase64Binary", x.ValueBase64Binary)
	b = jsonOptBool(b, "valueBoolean", x.ValueBoolean)
	b = jsonOptStr(b, "valueCanonical", x.ValueCanonical)
	b = jsonOptStr(b, "valueCode", x.ValueCode)
	b = jsonOptStr(b, "valueDate", x.ValueDate)
	b = jsonOptStr(b, "valueDateTime", x.ValueDateTime)
	b = e.optDecimal(b, "valueDecimal", x.ValueDecimal)
	b = jsonOptStr(b, "valueId", x.ValueId)
	b = jsonOptStr(b, "valueInstant", x.ValueInstant)
	b = jsonOptInt(b, "valueInteger", x.ValueInteger)
	b = jsonOptStr(b, "valueMarkdown", x.ValueMarkdown)
	b = jsonOptStr(b, "valueOid", x.ValueOid)
	b = jsonOptInt(b, "valuePositiveInt", x.ValuePositiveInt)
	b = jsonOptStr(b, "valueString", x.ValueString)
	b = jsonOptStr(b, "valueTime", x.ValueTime)
	b = jsonOptInt(b, "valueUnsignedInt", x.ValueUnsignedInt)
	b = jsonOptStr(b, "valueUri", x.ValueUri)
	b = jsonOptStr(b, "valueUrl", x.ValueUrl)
	b = jsonOptStr(b, "valueUuid", x.ValueUuid)
	if hasComplexValue(x) {
		e.failed = true
	}
	return append(b, '}')
}

// hasComplexValue reports whether x has a value[x] of a complex type; the
// list follows the model's field order.
func hasComplexValue(x *fm.Extension) bool {
	return x.ValueAddress != nil || x.ValueAge != nil || x.ValueAnnotation != nil ||
		x.ValueAttachment != nil || x.ValueCodeableConcept != nil || x.ValueCoding != nil ||
		x.ValueContactPoint != nil || x.ValueCount != nil || x.ValueDistance != nil ||
		x.ValueDuration != nil || x.ValueHumanName != nil || x.ValueIdentifier != nil ||
		x.ValueMoney != nil || x.ValuePeriod != nil || x.ValueQuantity != nil ||
		x.ValueRange != nil || x.ValueRatio != nil || x.ValueReference != nil ||
		x.ValueSampledData != nil || x.ValueSignature != nil || x.ValueTiming != nil ||
		x.ValueContactDetail != nil || x.ValueContributor != nil || x.ValueDataRequirement != nil ||
		x.ValueExpression != nil || x.ValueParameterDefinition != nil || x.ValueRelatedArtifact != nil ||
		x.ValueTriggerDefinition != nil || x.ValueUsageContext != nil || x.ValueDosage != nil ||
		x.ValueMeta != nil
}

// The list methods write slice members: encoding/json omits an empty
// slice with omitempty. They are spelled out per element type because a
// generic one taking the element encoder as a func value would make the
// call indirect and the encoder escape.

func (e *encoder) extensions(b []byte, name string, xs []fm.Extension) []byte {
	if len(xs) == 0 {
		return b
	}
	b = jsonKey(b, name)
	for i := range xs {
		b = e.extension(jsonElem(b, i), &xs[i])
	}
	return append(b, ']')
}

func (e *encoder) codings(b []byte, name string, xs []fm.Coding) []byte {
	if len(xs) == 0 {
		return b
	}
	b = jsonKey(b, name)
	for i := range xs {
		b = e.coding(jsonElem(b, i), &xs[i])
	}
	return append(b, ']')
}

func (e *encoder) concepts(b []byte, name string, xs []fm.CodeableConcept) []byte {
	if len(xs) == 0 {
		return b
	}
	b = jsonKey(b, name)
	for i := range xs {
		b = e.concept(jsonElem(b, i), &xs[i])
	}
	return append(b, ']')
}

// agents writes agent, the one list without omitempty: null when nil, []
// when empty.
func (e *encoder) agents(b []byte, name string, xs []fm.AuditEventAgent) []byte {
	b = jsonKey(b, name)
	switch {
	case xs == nil:
		return append(b, "null"...)
	case len(xs) == 0:
		return append(b, '[', ']')
	}
	for i := range xs {
		b = e.agent(jsonElem(b, i), &xs[i])
	}
	return append(b, ']')
}

func (e *encoder) entities(b []byte, name string, xs []fm.AuditEventEntity) []byte {
	if len(xs) == 0 {
		return b
	}
	b = jsonKey(b, name)
	for i := range xs {
		b = e.entity(jsonElem(b, i), &xs[i])
	}
	return append(b, ']')
}

func (e *encoder) details(b []byte, name string, xs []fm.AuditEventEntityDetail) []byte {
	if len(xs) == 0 {
		return b
	}
	b = jsonKey(b, name)
	for i := range xs {
		b = e.detail(jsonElem(b, i), &xs[i])
	}
	return append(b, ']')
}

// isJSONInteger reports whether s is a JSON integer literal: an optional
// minus sign and digits without a leading zero.
func isJSONInteger(s string) bool {
	if s != "" && s[0] == '-' {
		s = s[1:]
	}
	if s == "" || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// jsonSafe[c] reports whether encoding/json, in its default HTML-safe
// mode, copies the ASCII byte c into a string literal unchanged: not a
// control character, quote or backslash, nor <, > and & (which it escapes
// so JSON can be embedded in HTML).
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendJSONString appends s as a JSON string literal escaped as
// encoding/json escapes it: \" \\ \b \f \n \r \t, other control
// characters and <, >, & as \u00XX (lower-case hex), U+2028 and U+2029 as
// \u2028 and \u2029, and each byte of invalid UTF-8 as \ufffd; everything
// else is copied as is.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0 // s[start:i] is pending, to be copied unchanged
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
