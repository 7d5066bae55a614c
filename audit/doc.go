// Package audit owns fhirwall's record of every access: the FHIR R4
// AuditEvent built for each request (following IHE BALP, the Basic Audit Log
// Patterns, plus fhirwall's documented extensions), the append-only hash
// chain and its signed checkpoints, the stores that hold it (SQLite by
// default, PostgreSQL for shared deployments), forwarding to log shippers and
// external audit repositories, and the auditor API (search, read, $verify,
// NDJSON export, accounting of disclosures).
//
// The one rule it enforces: no disclosure without a record. Log.Intent
// returns only once the intent record is committed (fsynced) to the store;
// if it cannot be, it returns an error carrying fhir.ReasonAuditUnavailable
// and the caller must refuse the request with 503 and forward nothing.
//
// It must never record a bearer token or a response body, never delete or
// rewrite a record, never let a client's cancelled context cancel an audit
// write, and never import proxy, policy or masking: they feed it Access
// values, it knows nothing of how they were computed.
//
// # AuditEvent shape
//
// Each access yields one AuditEvent (see BuildEvent):
//
//   - type rest; subtype the FHIR restful-interaction code (REST routes use
//     the lower-case HTTP method in SubtypeRESTSystem); action C/R/U/D/E.
//   - outcome: 0 success; 4 refused or rejected by the gateway or upstream
//     (4xx); 8 failed after forwarding (upstream error, client gone, 5xx) and
//     intents closed as incomplete after a crash; 12 gateway fault
//     (internal-error, audit-unavailable, and an intent that committed after
//     its caller had given up and refused). outcomeDesc is the fhir.Reason
//     code ("incomplete" for crash recovery; "http-<status>" or "failed" when
//     the caller gave no reason), never free text.
//   - meta.profile names the BALP profile only when the event meets it
//     (success, both network addresses known, one data entity, at most one
//     patient for the Patient variants).
//   - agents: the AI agent as the requesting user (type IRCP for reads and
//     queries, AUT for create/update, CST for delete; requestor true, roles,
//     purposeOfUse, policy urn:ietf:params:oauth:jti:<jti>, altId the OAuth
//     client id); the client application (who.identifier = client id in the
//     issuer's namespace, network = source address); fhirwall as the server.
//     BALP swaps the DICOM role codes between patterns: Read (read, vread,
//     history, capabilities) has the client as 110152 Destination and the
//     server as 110153 Source; Query, Create, Update and operations have the
//     client as 110153 Source and the server as 110152 Destination (the
//     query flows to the server); Delete types them 110150 Application and
//     provenance-participant-type custodian.
//   - entities: the request id (BALP XrequestId), the query (type 2, role 24,
//     base64 of the request path and query) for searches, the target and
//     every returned resource (type 2, role 4, versioned reference; returned
//     ones carry the ExtDisclosed extension), and one patient entity (type 1,
//     role 1) per patient disclosed or targeted. fhirwall records one event
//     per access with several patient entities, not BALP PatientQuery's one
//     event per patient; patient searches are exact on each entity.
//   - extensions (beyond BALP, which records neither results nor what was
//     hidden): decision, phase, HTTP details, mask profiles with element
//     counts, the SHA-256 and length of the bytes sent, the policy version
//     and a failure detail. Their URLs are the Ext* constants.
//
// # Durability and the chain
//
// Every record (intent, event) carries seq, the previous record's hash and
// its own hash, SHA-256 over the canonical encoding documented on
// RecordHash. An event's body is its AuditEvent; an intent's is a compact
// document of the access (intent.go), which becomes an AuditEvent only if
// the intent must be closed without its completion. A single writer goroutine gathers concurrent writes into one
// transaction (group commit). Checkpoints sign (seq, hash) with an Ed25519
// key as a compact JWS every Options.CheckpointEvery records or
// Options.CheckpointInterval. Verify walks the chain and the checkpoints;
// records appended after the last checkpoint can be truncated without
// detection, so the window is bounded by those two options (a checkpoint is
// also written on Close).
//
// SQLite runs in WAL mode with synchronous=FULL: each commit fsyncs the WAL,
// so a committed intent survives power loss. NORMAL would be faster but may
// lose the last commits on power loss, which breaks "durable before
// disclosure". Group commit pays one fsync per batch, not per record.
// Completions and continuation events (their intent is already durable and
// their data already sent) wait up to 5 ms to share the next durable commit
// rather than costing one of their own.
//
// # The search index follows the chain
//
// A chain commit holds only the records. The search values of each event
// (agent, patient, entity without its version, subtype, action, outcome)
// are stored as 63-bit SHA-256 keys in audit_search (h, seq), written by the
// same writer in separate transactions that do not wait for an fsync: a
// few times a second, and before the auditor API, an export or an
// accounting of disclosures reads (the reader waits while the writer
// writes what is pending in chunks, taking turns with chain commits), so
// a search never misses an access this gateway recorded. Search checks every candidate's body, so a versioned
// entity search is exact and a collision or a forged row adds nothing.
// audit_index_marks says how far each gateway's events are indexed; at
// start a gateway indexes every event past the marks that the index lacks
// (a crash between the two transactions, a replica that never came back).
// Verify checks that every indexed event's values have their rows: a
// deleted or rewritten row is index-mismatch; events past the marks are
// counted as unindexed. An access of another replica sharing the store is
// searchable once that replica has indexed it (at most a fraction of a
// second later, or at its next start).
package audit
