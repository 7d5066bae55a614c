package masking

import "bytes"

// Masked resources are labelled after they are written: only at the end of
// a resource is it known whether anything was masked, and meta or text may
// already be behind us. Both were recorded as spans of w.out and are fixed
// up in place.

// RedactedSystem and RedactedCode are the meta.security label every masked
// resource carries (FHIR R4 security labels, v3 ObservationValue).
const (
	RedactedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	RedactedCode   = "REDACTED"
)

const redactedCoding = `{"system":"` + RedactedSystem + `","code":"` + RedactedCode + `","display":"redacted"}`

// label drops the narrative of the masked resource written at w.out[start:]
// and adds the REDACTED security label to its meta.
//
// The whole text element goes, not only text.div: Narrative.div is required
// (1..1), so a text without div would be invalid, and text.status alone says
// nothing worth keeping.
func (w *walker) label(start int, rs *resState) {
	s, e := -1, -1 // the text member to cut, comma included
	if rs.hasText {
		s, e = rs.textStart, rs.textEnd
		if rs.textFirst && e < len(w.out) && w.out[e] == ',' {
			e++ // it was the first member: take the comma that followed it
		}
	}
	if s >= 0 && (!rs.hasMeta || s < rs.metaStart) {
		w.out = append(w.out[:s], w.out[e:]...)
		if rs.hasMeta {
			rs.metaStart -= e - s
			rs.metaEnd -= e - s
		}
		s = -1
	}
	if !rs.hasMeta {
		w.out = w.out[:len(w.out)-1] // the closing '}'
		if len(w.out) > start+1 {
			w.out = append(w.out, ',')
		}
		w.out = append(w.out, `"meta":{"security":[`+redactedCoding+`]}}`...)
		return
	}
	if meta := w.out[rs.metaStart:rs.metaEnd]; meta[0] == '{' {
		off, tp := 0, (*tapeCursor)(nil)
		if bytes.Equal(meta, rs.metaRaw) {
			// written as it came: read its members from the tape
			meta, off, tp = rs.metaRaw, rs.metaOff, &w.tape
		}
		w.tmp = appendLabelledMeta(w.tmp[:0], meta, off, tp, w.scratch)
	} else { // not an object (invalid FHIR): replace it whole
		w.tmp = append(w.tmp[:0], `{"security":[`+redactedCoding+`]}`...)
	}
	// what follows meta is moved once, leaving out a text after meta
	if s >= 0 {
		w.tmp = append(w.tmp, w.out[rs.metaEnd:s]...)
		w.tmp = append(w.tmp, w.out[e:]...)
	} else {
		w.tmp = append(w.tmp, w.out[rs.metaEnd:]...)
	}
	w.out = append(w.out[:rs.metaStart], w.tmp...)
}

// appendLabelledMeta appends meta (a canonical object just written) with
// the REDACTED coding added to meta.security unless it is there already.
// With a tape, meta is at offset off of the taped value.
func appendLabelledMeta(dst, meta []byte, off int, tp *tapeCursor, scratch []byte) []byte {
	dst = append(dst, '{')
	m := newMembersAt(meta, off, tp)
	n, done := 0, false
	for {
		k, v, ok := m.next()
		if !ok {
			break
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, '"')
		dst = append(dst, k...)
		dst = append(dst, '"', ':')
		if string(k) != "security" || v[0] != '[' {
			dst = append(dst, v...)
			continue
		}
		done = true
		present := false
		e := newElementsAt(v, m.valOff(v), tp)
		for {
			el, ok := e.next()
			if !ok {
				break
			}
			sys, _ := findMemberAt(el, e.elOff(el), tp, "system", scratch)
			code, _ := findMemberAt(el, e.elOff(el), tp, "code", scratch)
			if string(sys) == `"`+RedactedSystem+`"` && string(code) == `"`+RedactedCode+`"` {
				present = true
			}
		}
		if present {
			dst = append(dst, v...)
			continue
		}
		dst = append(dst, v[:len(v)-1]...) // without ']'
		dst = append(dst, ',')
		dst = append(dst, redactedCoding...)
		dst = append(dst, ']')
	}
	if !done {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `"security":[`+redactedCoding+`]`...)
	}
	return append(dst, '}')
}

// refSpan records the type, id and meta.versionId of a written resource for
// the Summary. The strings are cut from one arena when the Summary is
// built, so a long Bundle costs a few allocations, not three per entry.
func (w *walker) refSpan(typ *typeInfo, rs *resState) refSpan {
	sp := refSpan{typ: typ, id: int32(len(w.refArena))}
	if s, ok := stringValue(rs.idRaw, w.scratch); ok {
		w.refArena = append(w.refArena, s...)
	}
	sp.idEnd = int32(len(w.refArena))
	if rs.metaRaw != nil {
		if v, ok := findMemberAt(rs.metaRaw, rs.metaOff, &w.tape, "versionId", w.scratch); ok {
			if s, ok := stringValue(v, w.scratch); ok {
				w.refArena = append(w.refArena, s...)
			}
		}
	}
	sp.vEnd = int32(len(w.refArena))
	return sp
}
