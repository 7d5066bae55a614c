// Package fhir owns fhirwall's knowledge of FHIR R4 REST: the classification
// of an HTTP request into a typed interaction, search parameters, the patient
// compartment, resource type names, OperationOutcome and the reason codes
// every refusal carries.
//
// It must never make a policy decision, hold configuration, or import any
// other fhirwall package: everything else depends on it.
package fhir
