// Package masking owns fhirwall's response rewriting: mask rules compiled
// against the FHIR R4 definitions, and the streaming JSON rewriter that
// applies them, consults the authorization layer's Check for every
// resource, labels masked resources, and rewrites upstream links.
//
// The rewriter streams: a Bundle's envelope and entries are read, checked,
// masked and written one at a time, so memory is bounded by the largest
// single resource (Options.MaxResourceBytes), never by the body.
//
// Fail closed. The package must never pass on a value it has not seen the
// way a client will see it: input is accepted only when it is one
// well-formed JSON document with valid UTF-8, no duplicate member names, no
// lone surrogate escapes and bounded depth; member names are matched after
// decoding escapes and written back canonically; anything in doubt ends the
// rewrite with an error, and output is never completed after an error.
//
// It must never log, never read configuration files, and never decide
// authorization itself: who may see which resource is the Check's answer.
// It imports no fhirwall package but fhir.
package masking
