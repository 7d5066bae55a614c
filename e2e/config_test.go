//go:build e2e

package e2e

// agentSpec is one registered agent of the e2e configuration and the token
// it is given.
type agentSpec struct {
	id      string
	scopes  []string
	patient bool // the token carries the first seeded patient
}

// The agents of e2e.yaml. The token scopes equal the role ceilings, so the
// effective scopes are what the roles say.
var agentSpecs = []agentSpec{
	{id: "agent-billing-07", scopes: []string{"system/Claim.rs", "system/Coverage.rs", "system/Patient.rs"}},
	{id: "agent-triage-01", scopes: []string{"patient/Patient.rs", "patient/Observation.rs"}, patient: true},
	{id: "agent-labs-03", scopes: []string{"system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"}},
	{id: "agent-writer-02", scopes: []string{"system/Patient.cruds", "system/Observation.cruds"}},
	{id: "agent-rogue-09", scopes: []string{"system/Patient.rs"}},
	{id: "auditor-privacy-01", scopes: []string{"system/AuditEvent.rs"}},
	{id: "admin-ops-01", scopes: []string{"fhirwall.admin"}},
}

// configTemplate is the gateway configuration under test.
const configTemplate = `# fhirwall e2e configuration (written by the e2e test)
listen: {{.Listen}}
public_base_url: {{.Public}}
auth:
  issuers:
    - issuer: {{.Issuer}}
      jwks_file: jwks.json
      audiences: [{{.Public}}/fhir]
      algorithms: [ES256]
agents:
  - id: agent-billing-07
    roles: [billing]
  - id: agent-triage-01
    roles: [triage]
  - id: agent-labs-03
    roles: [lab-reader]
  - id: agent-writer-02
    roles: [writer]
  - id: agent-rogue-09
    roles: [rogue]
  - id: auditor-privacy-01
    roles: [auditor]
  - id: admin-ops-01
    roles: [admin]
roles:
  billing:
    scopes: [system/Claim.rs, system/Coverage.rs, system/Patient.rs]
    masks: [hide-diagnosis, contact-minimum]
    limits: {requests_per_second: 500, burst: 500, patients_per_hour: 1000}
  triage:
    scopes: [patient/Patient.rs, patient/Observation.rs]
    masks: [no-ssn]
    limits: {requests_per_second: 500, burst: 500, patients_per_hour: 1000}
  lab-reader:
    scopes: ["system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"]
    limits: {requests_per_second: 500, burst: 500, patients_per_hour: 1000}
  writer:
    scopes: [system/Patient.cruds, system/Observation.cruds]
    limits: {requests_per_second: 500, burst: 500, patients_per_hour: 1000}
  rogue:
    scopes: [system/Patient.rs]
  auditor:
    scopes: [system/AuditEvent.rs]
  admin:
    scopes: []
    admin: true
masks:
  hide-diagnosis: [Claim.diagnosis]
  contact-minimum:
    - Patient.telecom
    - path: Patient.identifier.where(system='http://hl7.org/fhir/sid/us-ssn')
    - path: Patient.birthDate
      action: generalize
  no-ssn:
    - Patient.identifier.where(system='http://hl7.org/fhir/sid/us-ssn')
routes:
  - name: ehr
    prefix: /fhir
    kind: fhir
    upstream: {{.Upstream}}
audit:
  store: sqlite://audit.db
`
