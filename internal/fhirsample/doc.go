// Package fhirsample is a small in-memory FHIR R4 server filled with
// synthetic data. `fhirwall demo` runs it as the upstream behind the
// gateway, and the gateway's tests use it as an honest FHIR server: it
// speaks the R4 REST API (capabilities, read, vread, search with paging and
// includes, compartment search, Patient/$everything, create, update, delete,
// history, batch and atomic transaction) and answers errors with
// OperationOutcome.
//
// Every generated resource is fake and says so: it carries the meta.tag
// https://fhirwall.dev/fhir/CodeSystem/demo|synthetic, names come from fixed
// lists of invented surnames, phone numbers are in the fictional 555-01xx
// range and SSNs start with 999, a prefix that is never issued. The data is
// deterministic for a given Options.Seed, and its shape (which ids exist,
// which patients have claims) does not depend on the seed at all; see
// New for the ids the demo and tests can rely on.
//
// Search is lenient, as FHIR allows by default: a parameter the server does
// not know (including chained parameters and _sort) is ignored and left out
// of the Bundle's self link, so a client can see what was applied. A request
// with "Prefer: handling=strict" gets 400 instead. A known parameter with a
// value or modifier the server cannot process is always a 400.
//
// Formats: JSON only. A request asking for XML (Accept or _format) gets
// 406 and one sending a non-JSON body gets 415, both with an
// OperationOutcome. Not supported, by design: PATCH, conditional create,
// update and delete, type- and system-level history and search,
// _summary other than count, _elements, _sort, chained parameters and
// _has. History and $everything are not paged; search pages by offset
// (_getpagesoffset), so a write between two page requests can shift
// results across pages.
//
// This package must never be reachable from a production configuration
// (only the demo command and tests import it), never hold real patient data,
// and never log resource contents.
package fhirsample
