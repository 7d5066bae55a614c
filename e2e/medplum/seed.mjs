// Synthetic seed data for the e2e upstream: patients with an SSN-like
// identifier and telecom (so masks have something to remove), laboratory and
// vital-sign observations, and claims with diagnoses. Every resource carries
// the synthetic tag; the values are made up and deterministic.

const SYNTHETIC = { system: 'https://fhirwall.dev/fhir/CodeSystem/demo', code: 'synthetic' };
const CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
const FAMILIES = ['Okafor', 'Lindqvist', 'Tanaka', 'Moreau', 'Castillo', 'Novak', 'Haddad', 'Byrne', 'Ivanova', 'Mensah', 'Kowalski', 'Sato'];
const GIVEN = ['Ada', 'Bo', 'Chen', 'Dara', 'Emil', 'Fatima', 'Gus', 'Hana', 'Ines', 'Jon', 'Kira', 'Lev'];

export const PATIENTS = 12;
export const OBS_PER_PATIENT = 3; // 2 laboratory + 1 vital-signs
export const CLAIMS_PER_PATIENT = 2;

/**
 * Seeds repo and returns ids the e2e test needs.
 * @param {import('@medplum/fhir-router').MemoryRepository} repo
 */
export async function seed(repo) {
  const meta = { tag: [SYNTHETIC] };
  const org = await repo.createResource({
    resourceType: 'Organization',
    meta,
    name: 'Synthetic General Hospital',
  });
  const practitioner = await repo.createResource({
    resourceType: 'Practitioner',
    meta,
    name: [{ family: 'Example', given: ['Pat'] }],
  });
  const patients = [];
  for (let i = 0; i < PATIENTS; i++) {
    const p = await repo.createResource({
      resourceType: 'Patient',
      meta,
      identifier: [
        { system: 'http://hl7.org/fhir/sid/us-ssn', value: `999-00-${String(1000 + i)}` },
        { system: 'https://fhirwall.dev/fhir/sid/mrn', value: `MRN${String(i).padStart(5, '0')}` },
      ],
      name: [{ family: FAMILIES[i % FAMILIES.length], given: [GIVEN[i % GIVEN.length]] }],
      telecom: [{ system: 'phone', value: `555-01${String(i).padStart(2, '0')}` }],
      gender: i % 2 ? 'female' : 'male',
      birthDate: `19${50 + i}-0${1 + (i % 9)}-1${i % 10}`,
      managingOrganization: { reference: `Organization/${org.id}` },
    });
    patients.push(p);
    const obs = [
      ['laboratory', '2345-7', 'Glucose', 90 + i, 'mg/dL'],
      ['laboratory', '718-7', 'Hemoglobin', 12 + (i % 4), 'g/dL'],
      ['vital-signs', '8867-4', 'Heart rate', 60 + i, '/min'],
    ];
    for (const [cat, code, display, value, unit] of obs) {
      await repo.createResource({
        resourceType: 'Observation',
        meta,
        status: 'final',
        category: [{ coding: [{ system: CATEGORY, code: cat }] }],
        code: { coding: [{ system: 'http://loinc.org', code, display }] },
        subject: { reference: `Patient/${p.id}` },
        performer: [{ reference: `Practitioner/${practitioner.id}` }],
        effectiveDateTime: `2026-01-${String(1 + i).padStart(2, '0')}T09:00:00Z`,
        valueQuantity: { value, unit, system: 'http://unitsofmeasure.org', code: unit },
      });
    }
    for (let c = 0; c < CLAIMS_PER_PATIENT; c++) {
      await repo.createResource({
        resourceType: 'Claim',
        meta,
        status: 'active',
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/claim-type', code: 'professional' }] },
        use: 'claim',
        patient: { reference: `Patient/${p.id}` },
        created: `2026-02-${String(1 + c).padStart(2, '0')}`,
        provider: { reference: `Organization/${org.id}` },
        priority: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/processpriority', code: 'normal' }] },
        insurance: [{ sequence: 1, focal: true, coverage: { display: 'Synthetic Health Plan' } }],
        diagnosis: [
          {
            sequence: 1,
            diagnosisCodeableConcept: {
              coding: [{ system: 'http://hl7.org/fhir/sid/icd-10-cm', code: c ? 'E11.9' : 'J45.909' }],
            },
          },
        ],
        total: { value: 120 + 10 * c, currency: 'USD' },
      });
    }
  }
  return {
    patients: patients.map((p) => p.id),
    organization: org.id,
    practitioner: practitioner.id,
    observationsPerPatient: OBS_PER_PATIENT,
    claimsPerPatient: CLAIMS_PER_PATIENT,
  };
}
