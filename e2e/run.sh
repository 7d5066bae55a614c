#!/usr/bin/env bash
# Runs fhirwall's end-to-end tests against Medplum's FHIR engine.
# Installs the npm packages from the committed lock files (npm ci), then
# runs the Go tests behind the e2e build tag. Safe to run again and again.
# Needs Go and Node.js >= 20.19 (npm comes with it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

if ! command -v node >/dev/null 2>&1; then
	echo "e2e: node is not installed (need Node.js >= 20.19)" >&2
	exit 1
fi

for d in medplum client; do
	# npm ci removes and reinstalls node_modules; skip it when the lock file
	# has not changed since the last install.
	stamp="$here/$d/node_modules/.fhirwall-lock.sha256"
	sum="$(sha256sum "$here/$d/package-lock.json" | cut -d' ' -f1)"
	if [[ -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then
		continue
	fi
	echo "e2e: npm ci in e2e/$d" >&2
	(cd "$here/$d" && npm ci --no-audit --no-fund --loglevel=error)
	echo "$sum" >"$stamp"
done

cd "$root"
exec go test -tags e2e -count=1 "$@" ./e2e/...
