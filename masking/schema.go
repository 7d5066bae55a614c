package masking

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"unicode"
)

// The R4 schema the masker walks by is derived once, by reflection, from the
// samply model structs: each struct's json tags are the element names. The
// models leave out DomainResource.contained (it would be a []json.RawMessage),
// so it is added by hand to every resource that has a narrative.

type fieldKind uint8

const (
	kindPrimitive fieldKind = iota // a JSON string, number or boolean
	kindComplex                    // a data type or backbone element (a JSON object)
	kindResource                   // a nested resource (contained, entry.resource, ...)
)

// field is one element of a type.
type field struct {
	id         int // index in schemaTables.fields
	key        string
	kind       fieldKind
	typ        *typeInfo // kindComplex only
	stringLike bool      // kindPrimitive whose JSON form is a string
	urlRewrite bool      // Bundle.link.url, Bundle.entry.fullUrl, entry.response.location
	placement  Placement // kindResource only
}

// typeInfo is one R4 resource, data type or backbone element.
type typeInfo struct {
	id       int
	name     string // resource type, data type, or Go name of a backbone element
	dataType bool   // name is an R4 complex data type a type-wide rule may anchor at
	resource bool
	fields   map[string]*field
	// choices maps a choice element's base name ("value") to its JSON keys
	// ("valueQuantity", "valueString", ...).
	choices map[string][]string
	// table is fields as an open-addressing hash table for the walker's hot
	// lookup (see lookup).
	table []*field
	// folded holds every element name case-folded (foldKey; and
	// resourceType for resources): a member that is no element but folds to
	// one is refused, because case-insensitive decoders (Go's encoding/json
	// into structs, which also folds ſ to s and K to k) would read it as
	// that element.
	folded map[string]bool
	// dropWithResource: when the nested resource of this element is dropped,
	// the whole element goes (an entry without its resource, a parameter
	// without its value, would be a hollow shell that still leaks metadata).
	dropWithResource bool
}

type schemaTables struct {
	types     []*typeInfo
	fields    []*field
	resources map[string]*typeInfo
	dataTypes map[string]*typeInfo
}

var schema = sync.OnceValue(buildSchema)

func buildSchema() *schemaTables {
	s := &schemaTables{resources: map[string]*typeInfo{}, dataTypes: map[string]*typeInfo{}}
	byGo := map[reflect.Type]*typeInfo{}
	var build func(rt reflect.Type) *typeInfo
	build = func(rt reflect.Type) *typeInfo {
		if t, ok := byGo[rt]; ok {
			return t
		}
		t := &typeInfo{id: len(s.types), name: rt.Name(), fields: map[string]*field{}, choices: map[string][]string{}}
		s.types = append(s.types, t)
		byGo[rt] = t
		for i := 0; i < rt.NumField(); i++ {
			sf := rt.Field(i)
			key, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if key == "" || key == "-" {
				continue
			}
			f := &field{key: key}
			ft := sf.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft == reflect.TypeFor[json.RawMessage]():
				f.kind = kindResource
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.Uint8:
				ft = ft.Elem()
				fallthrough
			default:
				if ft.Kind() == reflect.Struct {
					f.kind = kindComplex
					f.typ = build(ft)
				} else {
					f.kind = kindPrimitive
					// Code enums are int types in the models but strings in JSON.
					f.stringLike = ft.Kind() == reflect.String && ft != reflect.TypeFor[json.Number]() ||
						ft.Kind() == reflect.Int && ft.PkgPath() != ""
				}
			}
			t.fields[key] = f
		}
		addChoices(t)
		return t
	}
	for name, rt := range r4DataTypes {
		t := build(rt)
		t.dataType = true
		s.dataTypes[name] = t
	}
	narrative := s.dataTypes["Narrative"]
	for name, rt := range r4Resources {
		t := build(rt)
		t.resource = true
		s.resources[name] = t
		if f := t.fields["text"]; f != nil && f.typ == narrative {
			t.fields["contained"] = &field{key: "contained", kind: kindResource, placement: Contained}
		}
	}
	bundle := s.resources["Bundle"]
	entry := bundle.fields["entry"].typ
	entry.dropWithResource = true
	entry.fields["resource"].placement = BundleEntry
	entry.fields["fullUrl"].urlRewrite = true
	entry.fields["response"].typ.fields["outcome"].placement = BundleEntryOutcome
	entry.fields["response"].typ.fields["location"].urlRewrite = true
	bundle.fields["link"].typ.fields["url"].urlRewrite = true // BundleLink, shared with entry.link
	for _, t := range s.types {
		t.folded = map[string]bool{}
		for k := range t.fields {
			t.folded[foldKey([]byte(k))] = true
		}
		if t.resource {
			t.folded[foldKey([]byte("resourceType"))] = true
		}
	}
	for _, t := range s.types {
		t.buildTable()
		for _, f := range t.fields {
			f.id = len(s.fields)
			s.fields = append(s.fields, f)
		}
	}
	param := s.resources["Parameters"].fields["parameter"].typ
	param.dropWithResource = true
	param.fields["resource"].placement = ParametersResource
	return s
}

// addChoices records choice elements: the keys valueQuantity, valueString...
// of one type share the base name "value".
func addChoices(t *typeInfo) {
	for key := range t.fields {
		for i := 1; i < len(key); i++ {
			if !unicode.IsUpper(rune(key[i])) {
				continue
			}
			base := key[:i]
			if _, ok := t.fields[base]; ok {
				break // "valueSet" next to "value": not a choice
			}
			// A base is a choice only when at least two keys share it, or the
			// suffix names a type; both hold for every R4 choice element.
			if isTypeSuffix(key[i:]) {
				t.choices[base] = append(t.choices[base], key)
			}
			break
		}
	}
	for base, keys := range t.choices {
		if len(keys) < 2 && !strings.HasSuffix(keys[0], "Reference") && !strings.HasSuffix(keys[0], "CodeableConcept") {
			delete(t.choices, base)
		}
	}
}

// choiceSuffixes are the R4 type names that can follow a choice element's
// base name.
var choiceSuffixes = map[string]bool{
	"Base64Binary": true, "Boolean": true, "Canonical": true, "Code": true, "Date": true, "DateTime": true,
	"Decimal": true, "Id": true, "Instant": true, "Integer": true, "Markdown": true, "Oid": true,
	"PositiveInt": true, "String": true, "Time": true, "UnsignedInt": true, "Uri": true, "Url": true,
	"Uuid": true, "Address": true, "Age": true, "Annotation": true, "Attachment": true,
	"CodeableConcept": true, "Coding": true, "ContactPoint": true, "Count": true, "Distance": true,
	"Duration": true, "HumanName": true, "Identifier": true, "Money": true, "Period": true,
	"Quantity": true, "Range": true, "Ratio": true, "Reference": true, "SampledData": true,
	"Signature": true, "Timing": true, "ContactDetail": true, "Contributor": true,
	"DataRequirement": true, "Expression": true, "ParameterDefinition": true, "RelatedArtifact": true,
	"TriggerDefinition": true, "UsageContext": true, "Dosage": true, "Meta": true,
}

func isTypeSuffix(s string) bool { return choiceSuffixes[s] }

// buildTable fills t.table: a power-of-two table at most half full, probed
// linearly from keyHash.
func (t *typeInfo) buildTable() {
	n := 8
	for n < 2*len(t.fields) {
		n *= 2
	}
	t.table = make([]*field, n)
	for key, f := range t.fields {
		i := keyHash(key) & (n - 1)
		for t.table[i] != nil {
			i = (i + 1) & (n - 1)
		}
		t.table[i] = f
	}
}

// keyHash mixes the length and three bytes of an element name: enough to
// spread R4 names, far cheaper than a general string hash.
func keyHash[S ~string | ~[]byte](k S) int {
	n := len(k)
	if n == 0 {
		return 0
	}
	return n*0x9E37 ^ int(k[0])*0x3B ^ int(k[n-1])*0x1F3 ^ int(k[n/2])*0x61
}

// lookup returns the field named key, or nil. It must not allocate: it runs
// once per member the walker visits.
func (t *typeInfo) lookup(key []byte) *field {
	mask := len(t.table) - 1
	for i := keyHash(key) & mask; ; i = (i + 1) & mask {
		f := t.table[i]
		if f == nil || f.key == string(key) {
			return f
		}
	}
}

// foldsToElement reports whether key, which names no element of t, is a
// case variant of one (or of its primitive extension).
func (t *typeInfo) foldsToElement(key []byte) bool {
	if len(key) > 1 && key[0] == '_' {
		key = key[1:]
	}
	return t.folded[foldKey(key)] && string(key) != "resourceType"
}
