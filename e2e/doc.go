// Package e2e proves fhirwall whole, against software nobody here wrote: a
// real FHIR engine (Medplum's @medplum/fhir-router with its in-memory
// repository, in e2e/medplum) as the upstream, the real fhirwall binary
// started with `fhirwall serve --config FILE`, and real clients (Go's
// net/http and the npm FHIR client library fhir-kit-client, in e2e/client)
// as the agents.
//
// The tests sit behind the build tag e2e because they need Node.js and the
// npm packages installed from the committed lock files; e2e/run.sh installs
// them (npm ci) and runs
//
//	go test -tags e2e -count=1 ./e2e/...
//
// This package owns only tests and their fixtures. It must never reach into
// the gateway's internals to make a test pass: everything goes through HTTP
// and the command line, as users do. Tokens are minted with the development
// issuer of package policy, the same one `fhirwall token` uses.
package e2e
