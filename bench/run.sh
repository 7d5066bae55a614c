#!/usr/bin/env bash
# fhirwall's load benchmark (issue 7): one run measures, in alternating
# rounds, the static upstream directly, a plain Go httputil.ReverseProxy,
# nginx (when installed), fhirwall with auth only and fhirwall with its full
# pipeline, and writes bench/RESULTS.md.
#
# Knobs (environment):
#   BENCH_DURATION=10s      wrk duration of one throughput round
#   BENCH_ROUNDS=2          alternating throughput rounds
#   BENCH_LATENCY=5s        duration of the one-connection latency round
#   BENCH_CONNECTIONS=16    wrk connections;  BENCH_THREADS=2 wrk threads
#   BENCH_BIG_MB=1024       size of the big searchset (0 skips it; 64 for a quick run)
#   BENCH_BIG_ROUNDS=1      transfers of the big searchset per target
#   BENCH_BIG_MAX=60s       stop one big transfer after this long (its rate is on what arrived)
#   BENCH_NGINX=1           0: leave nginx out; install: apt-get install it first
#   BENCH_BASE=REV          also measure the full pipeline built from git revision REV (fw-base)
#   BENCH_FW_MEMLIMIT=32MiB GOMEMLIMIT of the fhirwall targets (none: no limit)
#   BENCH_PROFILE=8s        perf-record the full pipeline per workload when perf is installed (0 skips)
#   BENCH_OUT=bench/RESULTS.md
# A full run takes about 6-9 minutes on a 2-core machine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

apt_install() {
	if [[ $(id -u) -eq 0 ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
	else
		sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
	fi
}

if ! command -v wrk >/dev/null 2>&1; then
	echo "bench: installing wrk (Debian)" >&2
	apt_install wrk
fi
nginx_flag=true
case "${BENCH_NGINX:-1}" in
0 | false | no) nginx_flag=false ;;
install)
	command -v nginx >/dev/null 2>&1 || { echo "bench: installing nginx (Debian)" >&2; apt_install nginx-light || apt_install nginx; }
	;;
esac

fw_memlimit="${BENCH_FW_MEMLIMIT:-32MiB}"
[[ $fw_memlimit == none ]] && fw_memlimit=""

bin="$(mktemp -d "${TMPDIR:-/tmp}/fhirwall-bench-bin.XXXXXX")"
trap 'rm -rf "$bin"' EXIT
echo "bench: building" >&2
go build -o "$bin/fhirwall" ./cmd/fhirwall
go build -o "$bin/upstream" ./bench/upstream
go build -o "$bin/plainproxy" ./bench/plainproxy
go build -o "$bin/driver" ./bench/driver

base_args=()
if [[ -n ${BENCH_BASE:-} ]]; then
	# The full pipeline of another revision, measured in the same run.
	echo "bench: building fhirwall at $BENCH_BASE" >&2
	wt="$bin/base-src"
	git worktree add --detach --quiet "$wt" "$BENCH_BASE"
	(cd "$wt" && go build -o "$bin/base/fhirwall" ./cmd/fhirwall)
	git worktree remove --force "$wt"
	base_args=(-base-bin "$bin/base/fhirwall" -base-label "$(git rev-parse --short "$BENCH_BASE")")
fi

"$bin/driver" -bin "$bin" \
	-out "${BENCH_OUT:-bench/RESULTS.md}" \
	-duration "${BENCH_DURATION:-10s}" \
	-rounds "${BENCH_ROUNDS:-2}" \
	-latency-duration "${BENCH_LATENCY:-5s}" \
	-connections "${BENCH_CONNECTIONS:-16}" \
	-threads "${BENCH_THREADS:-2}" \
	-big-mb "${BENCH_BIG_MB:-1024}" \
	-big-rounds "${BENCH_BIG_ROUNDS:-1}" \
	-big-max "${BENCH_BIG_MAX:-60s}" \
	-nginx="$nginx_flag" \
	-profile "${BENCH_PROFILE:-8s}" \
	-fw-memlimit "$fw_memlimit" \
	"${base_args[@]}" \
	"$@"
