// The e2e agent: a FHIR client library (fhir-kit-client) calling fhirwall as
// an AI agent would. The Go test decides what to do and asserts on what
// happened; this script only performs the steps and reports.
//
// Usage: FHIR_BASE=http://127.0.0.1:PORT/fhir TOKEN=... node agent.mjs '<plan JSON>'
// A plan is a JSON array of steps:
//   {"op":"read","resourceType":"Patient","id":"..."}
//   {"op":"search","resourceType":"Claim","searchParams":{...},"allPages":true}
//     (with "postSearch":true it POSTs to Claim/_search; with
//     "compartment":{"resourceType":"Patient","id":"..."} it searches
//     Patient/{id}/Claim)
//   {"op":"create","resourceType":"Patient","body":{...}}
//   {"op":"update","resourceType":"Patient","id":"...","body":{...}}
//   {"op":"patch","resourceType":"Patient","id":"...","jsonPatch":[...RFC 6902...]}
//   {"op":"delete","resourceType":"Patient","id":"..."}
//   {"op":"transaction","body":{...Bundle...}}
// It prints one JSON document: an array with, per step,
//   {"ok":true,"result":<resource>,"pages":[<Bundle>...]}   or
//   {"ok":false,"status":N,"outcome":<OperationOutcome or text>}
import { Client } from 'fhir-kit-client';

const base = process.env.FHIR_BASE;
const token = process.env.TOKEN;
if (!base || !token) {
  console.error('agent.mjs: FHIR_BASE and TOKEN are required');
  process.exit(2);
}
const plan = JSON.parse(process.argv[2] ?? '[]');
const client = new Client({ baseUrl: base, bearerToken: token });

// MAX_PAGES bounds a paging loop so a gateway that loops its links fails the
// test instead of hanging it.
const MAX_PAGES = 50;

async function step(s) {
  switch (s.op) {
    case 'read':
      return { result: await client.read({ resourceType: s.resourceType, id: s.id }) };
    case 'search': {
      const options = s.postSearch ? { postSearch: true } : {};
      let bundle = s.compartment
        ? await client.compartmentSearch({ resourceType: s.resourceType, compartment: s.compartment, searchParams: s.searchParams ?? {} })
        : await client.search({ resourceType: s.resourceType, searchParams: s.searchParams ?? {}, options });
      const pages = [bundle];
      while (s.allPages && pages.length < MAX_PAGES) {
        bundle = await client.nextPage({ bundle });
        if (!bundle) break;
        pages.push(bundle);
      }
      return { pages };
    }
    case 'create':
      return { result: await client.create({ resourceType: s.resourceType, body: s.body }) };
    case 'update':
      return { result: await client.update({ resourceType: s.resourceType, id: s.id, body: s.body }) };
    case 'patch':
      return { result: await client.patch({ resourceType: s.resourceType, id: s.id, jsonPatch: s.jsonPatch }) };
    case 'delete':
      return { result: await client.delete({ resourceType: s.resourceType, id: s.id }) };
    case 'transaction':
      return { result: await client.transaction({ body: s.body }) };
    default:
      throw new Error(`unknown op ${s.op}`);
  }
}

const out = [];
for (const s of plan) {
  try {
    out.push({ ok: true, ...(await step(s)) });
  } catch (err) {
    let outcome = err?.response?.data;
    if (typeof outcome === 'string') {
      try {
        outcome = JSON.parse(outcome);
      } catch {
        // keep the text
      }
    }
    out.push({ ok: false, status: err?.response?.status ?? 0, outcome: outcome ?? String(err?.message ?? err) });
  }
}
process.stdout.write(JSON.stringify(out) + '\n');
