package masking

import (
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"sync"

	"github.com/fhirwall/fhirwall/fhir"
)

// Rewriter applies one combination of mask profiles and one Check to
// responses. It is cheap to make (the compiled plan is cached by the Set)
// and may be used for several responses, one at a time or concurrently.
//
// Rules apply wherever their resource type appears: top level, Bundle
// entries at any nesting depth, contained resources, Parameters resources
// (parameter and part), entry response outcomes, NDJSON lines. A resource
// with anything masked (including in one of its contained resources) loses
// its narrative (text) and gets the meta.security label REDACTED.
//
// Bundle.total: when a Check is set, total is removed from every Bundle (at
// any nesting level), whatever the Check later decides. The envelope is
// streamed ahead of the entries, so whether an entry will be dropped is not
// known when total goes out, and a count the agent cannot verify discloses
// how many resources it was not shown.
type Rewriter struct {
	set   *Set
	plan  *plan
	check Check
	// onResources, when set, receives the written resources in batches
	// as a Bundle or NDJSON body streams, instead of Summary.Resources.
	onResources func([]ResourceRef)
}

// Summary describes what one Rewrite wrote, for the audit record.
type Summary struct {
	// Resources lists every resource written at top level, as a Bundle
	// entry (any nesting level), as a Parameters resource, or as an NDJSON
	// line, in output order (a streamed top-level Bundle comes first).
	// Contained resources are part of their container and not listed.
	Resources []ResourceRef
	// Dropped counts the resources a Check dropped.
	Dropped int
	// Masked counts masked elements per rule, keyed "profile:path".
	Masked map[string]int
	// MaskedResources counts resources that had something masked (and so
	// carry the REDACTED label).
	MaskedResources int
}

// ResourceRef names one written resource. ID and Version are empty when the
// resource had none.
type ResourceRef struct{ Type, ID, Version string }

// flushSize is how much output is gathered before it is written to dst.
const flushSize = 64 << 10

var walkers = sync.Pool{New: func() any { return new(walker) }}

func (rw *Rewriter) walker(src io.Reader) (*walker, *window, *validator) {
	w := walkers.Get().(*walker)
	opts := &rw.set.opts
	*w = walker{
		rw: rw, plan: rw.plan, bundle: schema().resources["Bundle"], sc: schema(),
		out: w.out[:0], cs: w.cs[:0], scratch: w.scratch[:0], keybuf: w.keybuf[:0], tmp: w.tmp[:0],
		counts: make([]int, len(rw.plan.rules)), links: opts.UpstreamBase != "",
		win:   window{r: src, buf: w.win.buf, limit: int(opts.MaxResourceBytes)},
		valid: validator{maxDepth: opts.MaxDepth, keys: w.valid.keys[:0], arena: w.valid.arena[:0], big: w.valid.big, tape: w.valid.tape[:0], mtape: w.valid.mtape[:0], recs: w.valid.recs[:0]},
	}
	if len(w.win.buf) < windowSize {
		w.win.buf = make([]byte, windowSize)
	}
	if len(opts.HashKey) > 0 {
		w.mac = hmac.New(sha256.New, opts.HashKey)
	}
	return w, &w.win, &w.valid
}

func (w *walker) release() {
	w.rw, w.plan, w.mac, w.win.r, w.tape = nil, nil, nil, nil, tapeCursor{}
	w.sum, w.counts, w.refArena, w.refSpans = Summary{}, nil, nil, nil
	if cap(w.win.buf) > 4*windowSize || cap(w.out) > 4*flushSize || cap(w.valid.mtape) > 1<<16 || cap(w.valid.recs) > 1<<16 {
		// do not pin a large resource's buffers
		w.win.buf, w.out, w.valid.tape, w.valid.mtape, w.valid.recs = nil, nil, nil, nil, nil
	}
	walkers.Put(w)
}

// flush writes the gathered output to dst.
func (w *walker) flush(dst io.Writer) error {
	if len(w.out) == 0 {
		return nil
	}
	_, err := dst.Write(w.out)
	w.out = w.out[:0]
	return err
}

// OnResources hands the resources written by a streamed Bundle or NDJSON
// body to f in batches of about resourceBatch as the stream goes, instead
// of gathering them all in Summary.Resources: the list of what a 10 GB
// Bundle disclosed must not grow in memory with it. What is left at the
// end (the top-level Bundle itself, last) is still in Summary.Resources.
// f runs on the rewriting goroutine and must not retain the slice. Call
// it before Rewrite.
func (rw *Rewriter) OnResources(f func([]ResourceRef)) { rw.onResources = f }

// resourceBatch is how many written resources are handed to OnResources
// at a time.
const resourceBatch = 1000

// handOffRefs passes every resource ref after the first keep (slots still
// being filled: the streamed top-level Bundle's own) to OnResources, and
// forgets them, once there are resourceBatch of them.
func (w *walker) handOffRefs(keep int) {
	if w.rw.onResources == nil || len(w.refSpans)-keep < resourceBatch {
		return
	}
	arena := string(w.refArena)
	refs := make([]ResourceRef, 0, len(w.refSpans)-keep)
	for _, sp := range w.refSpans[keep:] {
		refs = append(refs, ResourceRef{Type: sp.typ.name, ID: arena[sp.id:sp.idEnd], Version: arena[sp.idEnd:sp.vEnd]})
	}
	w.rw.onResources(refs)
	// The kept slots are placeholders without arena strings yet.
	w.refSpans, w.refArena = w.refSpans[:keep], w.refArena[:0]
}

// summary builds the Summary, cutting every ref string from one arena.
func (w *walker) summary() Summary {
	s := w.sum
	arena := string(w.refArena)
	s.Resources = make([]ResourceRef, len(w.refSpans))
	for i, sp := range w.refSpans {
		s.Resources[i] = ResourceRef{Type: sp.typ.name, ID: arena[sp.id:sp.idEnd], Version: arena[sp.idEnd:sp.vEnd]}
	}
	s.Masked = map[string]int{}
	for id, n := range w.counts {
		if n > 0 {
			s.Masked[w.plan.labels[id]] += n
		}
	}
	return s
}

// Rewrite reads one JSON document (a resource or a Bundle) from src and
// writes its masked form to dst.
//
// A Bundle whose first member is "resourceType":"Bundle" (as every server
// writes it) is streamed: envelope members and entries are read, checked,
// masked and written one at a time, each bounded by MaxResourceBytes. Any
// other document is held whole, bounded the same way.
//
// Fail closed: anything that is not one well-formed JSON object, has
// invalid UTF-8, duplicate member names, lone surrogate escapes, nesting
// over MaxDepth, a resource over MaxResourceBytes, a resource of no R4
// type, or that a Check refuses, ends the rewrite with an error (a
// *fhir.Error: response-unmaskable, or compartment-violation for refusals).
// Output already written to dst is then an unfinished document that no
// parser accepts; the caller must abort the response, never complete it.
func (rw *Rewriter) Rewrite(dst io.Writer, src io.Reader) (Summary, error) {
	w, win, v := rw.walker(src)
	defer w.release()
	c, ok, err := win.peek()
	if err != nil {
		return Summary{}, err
	}
	if !ok || c != '{' {
		return Summary{}, unmaskable(ErrMalformed, "the body is not a JSON object")
	}
	streamed, err := w.streamBundle(dst, win, v)
	if err != nil {
		return Summary{}, err
	}
	if !streamed {
		b, err := win.value(v, 0)
		if err != nil {
			return Summary{}, err
		}
		w.canonical, w.tape = v.escapedKey, tapeCursor{t: v.tape, mt: v.mtape}
		dropped, err := w.resource(b, 0, TopLevel)
		if err != nil {
			return Summary{}, err
		}
		if dropped {
			return Summary{}, fhir.Wrap(fhir.ReasonCompartmentViolation, ErrRefused, "the resource may not be disclosed")
		}
		if err := win.atEOF(); err != nil {
			return Summary{}, err
		}
	}
	if err := w.flush(dst); err != nil {
		return Summary{}, err
	}
	return w.summary(), nil
}

// RewriteNDJSON rewrites an NDJSON body: one resource per line, each read,
// checked, masked and written on its own (bounded by MaxResourceBytes).
// Blank lines are skipped; a dropped resource's line is left out. Errors are
// as for Rewrite.
func (rw *Rewriter) RewriteNDJSON(dst io.Writer, src io.Reader) (Summary, error) {
	w, win, v := rw.walker(src)
	defer w.release()
	for {
		line, ok, err := win.line()
		if err != nil {
			return Summary{}, err
		}
		if !ok {
			break
		}
		i := skipWS(line, 0)
		if i == len(line) {
			continue
		}
		line = line[i:]
		n, err := v.validate(line, 0)
		if err == errShort {
			err = ErrMalformed
		}
		if err != nil {
			return Summary{}, wrapSyntax(err)
		}
		if skipWS(line, n) != len(line) {
			return Summary{}, unmaskable(ErrMalformed, "an NDJSON line holds more than one value")
		}
		w.canonical, w.tape = v.escapedKey, tapeCursor{t: v.tape, mt: v.mtape}
		mark := len(w.out)
		dropped, err := w.resource(line[:n], 0, NDJSONLine)
		if err != nil {
			return Summary{}, err
		}
		if dropped {
			w.out = w.out[:mark]
			continue
		}
		w.handOffRefs(0)
		w.out = append(w.out, '\n')
		if len(w.out) >= flushSize {
			if err := w.flush(dst); err != nil {
				return Summary{}, err
			}
		}
	}
	if err := w.flush(dst); err != nil {
		return Summary{}, err
	}
	return w.summary(), nil
}
