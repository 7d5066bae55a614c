package masking

import (
	"bytes"
	"hash"

	"github.com/fhirwall/fhirwall/fhir"
)

// The walker rewrites one validated resource held in memory, guided by the
// R4 schema and the rule cursors running through it. Subtrees no rule can
// reach are copied through byte for byte; everything else is rebuilt.

// resState tracks, for the resource being written, where its meta and text
// landed in the output, so a masked resource can be labelled afterwards.
type resState struct {
	idRaw, metaRaw     []byte
	metaOff            int // metaRaw's offset in the taped value
	hasText, textFirst bool
	textStart, textEnd int
	hasMeta            bool
	metaStart, metaEnd int
}

type walker struct {
	rw        *Rewriter
	plan      *plan
	bundle    *typeInfo
	sc        *schemaTables
	out       []byte
	cs        []cursor
	counts    []int
	masked    int  // elements masked in the resource being written
	canonical bool // the value at hand has escaped member names
	links     bool
	scratch   []byte
	keybuf    []byte
	tmp       []byte
	mac       hash.Hash
	sum       Summary
	refArena  []byte
	refSpans  []refSpan
	win       window
	tape      tapeCursor // of the value being walked
	valid     validator
}

// refSpan is one Summary.Resources entry, its strings still in refArena.
type refSpan struct {
	typ             *typeInfo
	id, idEnd, vEnd int32
}

// resource writes the rewritten resource b to w.out, or nothing when the
// Check drops it.
func (w *walker) resource(b []byte, off int, pl Placement) (dropped bool, err error) {
	if len(b) == 0 || b[0] != '{' {
		return false, unmaskable(ErrUnknownResource, "a %s is not a JSON object", pl)
	}
	rtv, _ := findMemberAt(b, off, &w.tape, "resourceType", w.scratch)
	name, ok := stringValue(rtv, w.scratch)
	t := w.sc.resources[string(name)]
	if !ok || t == nil {
		return false, unmaskable(ErrUnknownResource, "a %s has no R4 resourceType", pl)
	}
	if c := w.rw.check; c != nil {
		v, err := c.CheckResource(t.name, b, pl)
		if err != nil {
			return false, err
		}
		switch v {
		case Keep:
		case Drop:
			w.sum.Dropped++
			return true, nil
		default:
			return false, fhir.Wrap(fhir.ReasonCompartmentViolation, ErrRefused, "a resource of type "+t.name+" in the response may not be disclosed")
		}
	}
	if w.plan.quiet[t.id] && !w.canonical {
		if rs, ok := w.quietScan(b, off, t); ok {
			w.out = append(w.out, b...)
			if pl != Contained && pl != BundleEntryOutcome {
				w.addRef(w.refSpan(t, &rs))
			}
			return false, nil
		}
	}
	saved := w.masked
	w.masked = 0
	base := len(w.cs)
	for _, id := range w.plan.anchors[t.id] {
		w.cs = append(w.cs, cursor{rule: id})
	}
	var rs resState
	start := len(w.out)
	ref := -1
	if pl != Contained && pl != BundleEntryOutcome {
		ref = w.addRef(refSpan{}) // reserved now so a container precedes its entries
	}
	if _, _, err := w.object(b, off, t, base, len(w.cs), &rs); err != nil {
		return false, err
	}
	w.cs = w.cs[:base]
	masked := w.masked > 0
	if masked {
		w.label(start, &rs)
		w.sum.MaskedResources++
	}
	if ref >= 0 {
		w.refSpans[ref] = w.refSpan(t, &rs)
	}
	w.masked = saved
	if masked && pl == Contained {
		w.masked++ // the container repeats what its contained resource held
	}
	return false, nil
}

// addRef appends a Summary entry and returns its index.
func (w *walker) addRef(sp refSpan) int {
	if len(w.refSpans) == cap(w.refSpans) {
		// double: append's gentler growth would allocate the long tail of
		// a large Bundle several times over
		w.refSpans = append(make([]refSpan, 0, max(64, 2*cap(w.refSpans))), w.refSpans...)
	}
	w.refSpans = append(w.refSpans, sp)
	return len(w.refSpans) - 1
}

// quietScan serves resources the plan cannot change (no rule anchored at
// the type, nothing relevant below it): unless they contain resources of
// their own, they are copied whole. A member that folds to "contained" sends
// the resource down the full path, which refuses it.
func (w *walker) quietScan(b []byte, off int, t *typeInfo) (resState, bool) {
	var rs resState
	m := newMembersAt(b, off, &w.tape)
	for {
		key, val, ok := m.next()
		if !ok {
			return rs, true
		}
		switch {
		case string(key) == "resourceType":
		case string(key) == "id":
			rs.idRaw = val
		case string(key) == "meta":
			rs.metaRaw, rs.metaOff = val, m.valOff(val)
		case len(key) == len("contained") && bytes.EqualFold(key, []byte("contained")):
			return rs, false
		case t.lookup(key) == nil && t.foldsToElement(key):
			return rs, false // a case variant of an element: the full path refuses it
		}
	}
}

// object writes the object b of type t with cursors w.cs[lo:hi]. It reports
// whether any member was written, and dropped when a nested resource that
// takes its element with it was dropped (nothing is written then).
//
// Members that pass unchanged are not written one by one: consecutive ones
// are copied as one run of input bytes when the next change (or the end)
// comes.
func (w *walker) object(b []byte, off int, t *typeInfo, lo, hi int, rs *resState) (has, dropped bool, err error) {
	start := len(w.out)
	w.out = append(w.out, '{')
	run := rawRun{b: b, start: -1}
	m := newMembersAt(b, off, &w.tape)
	m.plainKeys = !w.canonical
	for {
		var key, val []byte
		if m.taped {
			// members.next's taped path, by hand: this is the walker's
			// hottest loop and next is too big to inline
			if len(m.recs) < 4 {
				break
			}
			r := m.recs[:4:4]
			m.recs = m.recs[4:]
			at, ve := int(r[0])-off, int(r[3])-off
			m.keyAt, m.i = at, ve
			key, val = b[at+1:at+1+int(r[1])], b[int(r[2])-off:ve]
		} else {
			var ok bool
			if key, val, ok = m.next(); !ok {
				break
			}
		}
		if w.canonical && bytes.IndexByte(key, '\\') >= 0 {
			w.keybuf = appendUnescaped(w.keybuf[:0], key)
			key = w.keybuf
		}
		f, pass := w.passes(t, key, val, lo, hi, rs)
		if pass {
			if run.start < 0 {
				run.start = m.keyAt
			}
			run.end = m.i
			continue
		}
		drop, raw, err := w.member(t, f, key, val, m.valOff(val), lo, hi, rs, &run)
		if err != nil {
			return false, false, err
		}
		if drop {
			w.out = w.out[:start]
			return false, true, nil
		}
		if raw {
			if run.start < 0 {
				run.start = m.keyAt
			}
			run.end = m.i
			continue
		}
		// The member was rewritten or left out: the run ends before it.
		// (When it was written the run was flushed first; when it was
		// left out, nothing else may join the run across it.)
		w.flushRun(&run)
	}
	w.flushRun(&run)
	w.out = append(w.out, '}')
	return run.has, false, nil
}

// passes decides memberBody's most common outcome without its bookkeeping
// (or the function calls it costs per member): it reports ok only when
// memberBody would report the member raw (copied unchanged) with nothing
// else to do but note a resource's id. Everything else (escaped names,
// unknown or case-variant names, primitive extensions, members a rule
// cursor names, nested resources, relevant types, links, text, meta,
// Bundle.total) goes to memberBody, which decides it in full.
//
// f is t's field named key (nil for none), handed on to memberBody.
func (w *walker) passes(t *typeInfo, key, val []byte, lo, hi int, rs *resState) (f *field, ok bool) {
	f = t.lookup(key)
	if f == nil && rs != nil && !w.canonical && string(key) == "resourceType" {
		return nil, true
	}
	if f == nil || w.canonical || t == w.bundle && string(key) == "total" {
		return f, false
	}
	if rs != nil {
		if w.plan.rootHot[f.id] || string(key) == "text" || string(key) == "meta" {
			return f, false
		}
		if string(key) == "id" {
			rs.idRaw = val
		}
		return f, true
	}
	for _, c := range w.cs[lo:hi] {
		// a cursor whose next step names this member makes it a target
		// or a way down (transitions); others pass it by
		if stepMatches(&w.plan.rules[c.rule].steps[c.pos], key) {
			return f, false
		}
	}
	switch f.kind {
	case kindResource:
		return f, false
	case kindComplex:
		// no cursor runs into it and no type-wide rule starts at it (a
		// data type with anchored rules is relevant)
		return f, !w.plan.relevant[f.typ.id]
	}
	return f, !f.urlRewrite || !w.links
}

// rawRun is a stretch of members of one object to copy as they are.
type rawRun struct {
	b          []byte
	start, end int  // b[start:end], start < 0 when empty
	has        bool // some member of the object has been written
}

func (w *walker) flushRun(r *rawRun) {
	if r.start < 0 {
		return
	}
	if r.has {
		w.out = append(w.out, ',')
	}
	w.out = append(w.out, r.b[r.start:r.end]...)
	r.start, r.has = -1, true
}

func (w *walker) writeKey(key []byte, comma bool) {
	if comma {
		w.out = append(w.out, ',')
	}
	if w.canonical {
		w.out = appendJSONString(w.out, key)
	} else {
		w.out = append(w.out, '"')
		w.out = append(w.out, key...)
		w.out = append(w.out, '"')
	}
	w.out = append(w.out, ':')
}

// member writes `,"key":value`, or nothing when the member is masked away,
// or reports raw when it passes unchanged (object copies it with its run).
// f is t.lookup(key).
func (w *walker) member(t *typeInfo, f *field, key, val []byte, voff, lo, hi int, rs *resState, run *rawRun) (dropped, raw bool, err error) {
	base := len(w.cs)
	dropped, raw, mark, err := w.memberBody(t, f, key, val, voff, lo, hi, rs, run)
	w.cs = w.cs[:base]
	if mark >= 0 && len(w.out) > mark {
		run.has = true
	}
	return dropped, raw, err
}

// memberBody is member without its bookkeeping. mark is where it started
// writing, or -1.
func (w *walker) memberBody(t *typeInfo, f *field, key, val []byte, voff, lo, hi int, rs *resState, run *rawRun) (dropped, raw bool, mark int, err error) {
	mark = -1
	// text and meta of a resource are written alone: label needs their place
	rawOK := !w.canonical && (rs == nil || string(key) != "text" && string(key) != "meta")
	if rs != nil {
		switch string(key) {
		case "resourceType":
			if rawOK {
				return false, true, mark, nil
			}
			w.flushRun(run)
			w.writeKey(key, run.has)
			w.out = append(w.out, val...)
			run.has = true
			return false, false, mark, nil
		case "id":
			rs.idRaw = val
		case "meta":
			rs.metaRaw, rs.metaOff = val, voff
		}
	}
	if t == w.bundle && w.rw.check != nil && string(key) == "total" {
		return false, false, mark, nil // see Rewriter: counts may disclose dropped entries
	}
	ext := false
	if f == nil && len(key) > 1 && key[0] == '_' {
		f = t.lookup(key[1:])
		ext = f != nil && f.kind == kindPrimitive
	}
	if rs != nil && f != nil && !ext && rawOK && !w.plan.rootHot[f.id] {
		return false, true, mark, nil // no rule starts here and nothing below needs a look
	}
	var tlo, thi, clo, chi int
	if rs != nil && f != nil && !ext && !w.plan.rootHot[f.id] {
		// at a resource's root the cursors are its type's rules at their
		// first step, and rootHot says none of them (nor a type-wide rule)
		// takes this member
		n := len(w.cs)
		tlo, thi, clo, chi = n, n, n, n
	} else {
		tlo, thi, clo, chi = w.transitions(f, key, ext, lo, hi)
	}
	if f == nil && t.foldsToElement(key) {
		return false, false, mark, unmaskable(ErrMalformed, "a member name differs from an R4 element name only in case")
	}
	if ext {
		if thi > tlo {
			w.masked++ // the primitive is masked: so are its id and extensions
			return false, false, mark, nil
		}
		f = nil
	}
	if f == nil || thi == tlo && chi == clo && !w.needsWalk(f) {
		if rawOK {
			return false, true, mark, nil
		}
		w.flushRun(run)
		mark = len(w.out)
		comma := run.has
		w.writeKey(key, comma)
		if w.canonical {
			w.out = appendCanonical(w.out, val, w.scratch)
		} else {
			w.out = append(w.out, val...)
		}
		w.record(rs, key, mark, len(w.out), comma)
		run.has = true
		return false, false, mark, nil
	}
	w.flushRun(run)
	mark = len(w.out)
	comma := run.has
	w.writeKey(key, comma)
	if val[0] != '[' {
		wrote, drop, err := w.element(f, val, voff, tlo, thi, clo, chi)
		if err != nil {
			return false, false, mark, err
		}
		if drop && t.dropWithResource {
			return true, false, mark, nil
		}
		if !wrote {
			w.out = w.out[:mark]
		}
		w.record(rs, key, mark, len(w.out), comma)
		return false, false, mark, nil
	}
	w.out = append(w.out, '[')
	n := 0
	e := newElementsAt(val, voff, &w.tape)
	for {
		el, ok := e.next()
		if !ok {
			break
		}
		em := len(w.out)
		if n > 0 {
			w.out = append(w.out, ',')
		}
		wrote, _, err := w.element(f, el, e.elOff(el), tlo, thi, clo, chi)
		if err != nil {
			return false, false, mark, err
		}
		if !wrote {
			w.out = w.out[:em]
			continue
		}
		n++
	}
	if n == 0 {
		w.out = w.out[:mark] // FHIR has no empty arrays
		return false, false, mark, nil
	}
	w.out = append(w.out, ']')
	w.record(rs, key, mark, len(w.out), comma)
	return false, false, mark, nil
}

// record notes where a resource's text and meta members were written.
func (w *walker) record(rs *resState, key []byte, start, end int, comma bool) {
	if rs == nil || start == end {
		return
	}
	switch string(key) {
	case "text":
		rs.hasText, rs.textStart, rs.textEnd, rs.textFirst = true, start, end, !comma
	case "meta":
		// the value starts after `,"meta":`
		vs := start + len(`"meta":`)
		if comma {
			vs++
		}
		rs.hasMeta, rs.metaStart, rs.metaEnd = true, vs, end
	}
}

func (w *walker) needsWalk(f *field) bool {
	switch f.kind {
	case kindResource:
		return true
	case kindComplex:
		return w.plan.relevant[f.typ.id]
	}
	return f.urlRewrite && w.links
}

// element writes one value of field f (an array element or the member's
// single value). wrote is false when nothing was written.
func (w *walker) element(f *field, el []byte, eoff, tlo, thi, clo, chi int) (wrote, dropped bool, err error) {
	best, bestAct := int32(-1), action(0)
	for k := tlo; k < thi; k++ {
		c := w.cs[k]
		if c.pred != nil && !w.predHolds(c.pred, el, eoff) {
			continue
		}
		if a := w.plan.rules[c.rule].action; a > bestAct {
			best, bestAct = c.rule, a
		}
	}
	if best >= 0 {
		return w.mask(f, el, best), false, nil
	}
	switch f.kind {
	case kindResource:
		if el[0] != '{' {
			return false, false, unmaskable(ErrUnknownResource, "a nested resource is not a JSON object")
		}
		mark := len(w.out)
		drop, err := w.resource(el, eoff, f.placement)
		if drop {
			w.out = w.out[:mark]
		}
		return !drop, drop, err
	case kindComplex:
		if el[0] != '{' {
			// FHIR JSON writes complex elements as objects only; whatever a
			// client makes of anything else, the masker cannot vouch for it
			return false, false, unmaskable(ErrMalformed, "an element of type %s is not a JSON object", f.typ.name)
		}
		base := len(w.cs)
		for k := clo; k < chi; k++ {
			c := w.cs[k]
			if c.pred == nil || w.predHolds(c.pred, el, eoff) {
				w.cs = append(w.cs, cursor{rule: c.rule, pos: c.pos})
			}
		}
		if len(w.cs) == base && !w.canonical && !w.plan.relevant[f.typ.id] {
			w.out = append(w.out, el...) // no rule runs into this one
			return true, false, nil
		}
		has, drop, err := w.object(el, eoff, f.typ, base, len(w.cs), nil)
		w.cs = w.cs[:base]
		return has, drop, err
	}
	if f.urlRewrite && w.links {
		w.rewriteURL(el)
		return true, false, nil
	}
	if w.canonical {
		w.out = appendCanonical(w.out, el, w.scratch)
	} else {
		w.out = append(w.out, el...)
	}
	return true, false, nil
}
