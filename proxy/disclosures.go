package proxy

import (
	"sync"
	"time"

	"github.com/fhirwall/fhirwall/audit"
)

// maxContinuationsInFlight bounds the continuation events being written
// while a response streams: the stream runs ahead of the audit by at most
// this many events' worth of patients, and group commit gets several to
// batch into one fsync.
const maxContinuationsInFlight = 4

// maxPerEvent bounds the patients and the resources one AuditEvent lists.
// An access that discloses more (a large search, $everything) gets
// continuation events (audit.ExtPart) with the same request id, written as
// the response streams: memory stays bounded however large the Bundle, and
// every patient stays findable by the accounting of disclosures.
const maxPerEvent = 1000

// disclosures gathers what one response disclosed. It is fed by the
// response filter's goroutine and read by the request's after the filter
// has finished, never both at once.
type disclosures struct {
	c         *call
	patients  []string
	resources []audit.ResourceRef
	parts     int
	inflight  chan struct{}
	wg        sync.WaitGroup
	mu        sync.Mutex
	err       error // a continuation that could not be written
}

func (d *disclosures) addPatients(ids ...string) {
	d.patients = append(d.patients, ids...)
	if len(d.patients) >= maxPerEvent {
		d.flush()
	}
}

func (d *disclosures) addResources(refs ...audit.ResourceRef) {
	for len(refs) > 0 {
		n := min(len(refs), maxPerEvent-len(d.resources))
		d.resources = append(d.resources, refs[:n]...)
		refs = refs[n:]
		if len(d.resources) >= maxPerEvent {
			d.flush()
		}
	}
}

// flush writes what was gathered as a continuation event and forgets it.
// Up to maxContinuationsInFlight writes run while the stream goes on; the
// next flush waits for a free slot, so the audit never falls far behind.
func (d *disclosures) flush() {
	if len(d.patients) == 0 && len(d.resources) == 0 {
		return
	}
	if d.inflight == nil {
		d.inflight = make(chan struct{}, maxContinuationsInFlight)
	}
	d.parts++
	cont := d.c.acc
	cont.Part = d.parts
	cont.End = time.Now()
	cont.Patients = d.patients
	cont.Resources = d.resources
	cont.Masks = nil
	cont.ResponseSHA256, cont.ResponseBytes = "", 0
	d.patients, d.resources = nil, nil
	d.inflight <- struct{}{}
	d.wg.Add(1)
	go func() {
		defer func() { <-d.inflight; d.wg.Done() }()
		if err := d.c.rt.g.deps.Audit.Record(d.c.auditCtx(), &cont); err != nil {
			d.mu.Lock()
			if d.err == nil {
				d.err = err
			}
			d.mu.Unlock()
			d.c.rt.g.deps.Logger.Error("audit continuation failed", "request_id", cont.RequestID, "error", err.Error())
		}
	}()
}

// wait blocks until every continuation event has been written.
func (d *disclosures) wait() { d.wg.Wait() }

// into moves what is left into the access's own event.
func (d *disclosures) into(a *audit.Access) {
	a.Patients = appendNew(a.Patients, d.patients...)
	a.Resources = append(a.Resources, d.resources...)
	d.patients, d.resources = nil, nil
}
