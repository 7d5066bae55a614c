package masking

// Rule paths are followed with cursors: one per rule still matching at the
// element at hand. A cursor advances one step per member name; when its
// last step matches, the element is that rule's target.

// cursor is one rule part-way down a path.
type cursor struct {
	rule int32
	pos  int32 // index of the next step to match; -1 once the path is complete
	pred *step // the where() the element at hand must satisfy, or nil
}

// transitions advances the cursors w.cs[lo:hi] over member key (of field f)
// and appends two runs to w.cs: the rules that end at this member
// (w.cs[tlo:thi]) and those that go on into it (w.cs[clo:chi]), type-wide
// rules anchored at f's data type included.
func (w *walker) transitions(f *field, key []byte, ext bool, lo, hi int) (tlo, thi, clo, chi int) {
	if lo == hi && (f == nil || ext || f.kind != kindComplex || !f.typ.dataType) {
		n := len(w.cs) // no cursor to advance and no type-wide rule to start
		return n, n, n, n
	}
	if ext {
		key = key[1:]
	}
	rules := w.plan.rules
	tlo = len(w.cs)
	for k := lo; k < hi; k++ {
		c := w.cs[k]
		r := rules[c.rule]
		st := &r.steps[c.pos]
		if int(c.pos)+1 == len(r.steps) && stepMatches(st, key) {
			w.cs = append(w.cs, cursor{rule: c.rule, pos: -1, pred: predOf(st)})
		}
	}
	var anchors []int32
	if f != nil && !ext && f.kind == kindComplex && f.typ.dataType {
		anchors = w.plan.anchors[f.typ.id]
		for _, id := range anchors {
			if len(rules[id].steps) == 0 {
				w.cs = append(w.cs, cursor{rule: id, pos: -1, pred: rules[id].anchorPred})
			}
		}
	}
	thi = len(w.cs)
	clo = thi
	if ext {
		return tlo, thi, clo, clo
	}
	for k := lo; k < hi; k++ {
		c := w.cs[k]
		r := rules[c.rule]
		st := &r.steps[c.pos]
		if int(c.pos)+1 < len(r.steps) && stepMatches(st, key) {
			w.cs = append(w.cs, cursor{rule: c.rule, pos: c.pos + 1, pred: predOf(st)})
		}
	}
	for _, id := range anchors {
		if len(rules[id].steps) > 0 {
			w.cs = append(w.cs, cursor{rule: id, pred: rules[id].anchorPred})
		}
	}
	return tlo, thi, clo, len(w.cs)
}

func stepMatches(st *step, key []byte) bool {
	for _, k := range st.keys {
		if k == string(key) {
			return true
		}
	}
	return false
}

func predOf(st *step) *step {
	if st.predKey == "" {
		return nil
	}
	return st
}

// predHolds evaluates where(key='value') on one element, at offset eoff of
// the taped value.
func (w *walker) predHolds(st *step, el []byte, eoff int) bool {
	v, ok := findMemberAt(el, eoff, &w.tape, st.predKey, w.scratch)
	if !ok {
		return false
	}
	if s, ok := stringValue(v, w.scratch); ok {
		return string(s) == st.predVal
	}
	return string(v) == st.predVal
}
