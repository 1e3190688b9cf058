#!/usr/bin/env bash
# tokenward benchmark suite (issue 5): Go benchmarks of the validator and its
# peers, then an HTTP load test with wrk against the upstream alone, a bare
# httputil.ReverseProxy, the tokenward binary with and without its cache, and
# HAProxy's jwt_verify. Prints a markdown report and writes it to
# bench/results/latest.md. Installs nothing: it says what is missing.
#
#   bench/run.sh            full run, about 5 minutes
#   bench/run.sh -smoke     under a minute, for CI (also BENCH_SMOKE=1)
#   bench/run.sh -fixedrate fixed-rate tail latency (issue 15): the bare proxy's
#                           capacity, then (b), (c), (e) at 25/50/80% of it;
#                           3 rounds, about 6 minutes; writes results/fixedrate-latest.md
#
# Knobs (environment): BENCH_DURATION (10s), BENCH_WARMUP (2s), BENCH_ROUNDS (3),
# BENCH_CONNECTIONS (32), BENCH_THREADS (2), BENCH_TOKENS (300),
# BENCH_COUNT (5), BENCH_BENCHTIME (1s), BENCH_PROCS (1 when pinned),
# BENCH_PIN (1 if taskset and 2+ cores), BENCH_CACHE_SIZE (100000),
# BENCH_MEM_TOKENS (0: skip the memory phase; 100000 for the issue's target),
# BENCH_GO=0 / BENCH_HTTP=0 (skip a part), BENCH_SERVERS (a,b,c,d,e: the
# HTTP servers measured; HAProxy is needed only for e), BENCH_KEEP=1 (keep
# the work dir).
#
#   BENCH_GO=0 BENCH_SERVERS=b,c bench/run.sh   issue 3's load test: tokenward
#                                               next to the bare proxy (go + wrk)
set -euo pipefail
cd "$(dirname "$0")"

smoke=0
fixedrate=0
for arg in "$@"; do
	case "$arg" in
	-smoke | --smoke) smoke=1 ;;
	-fixedrate | --fixedrate) fixedrate=1 ;;
	-h | -help | --help)
		sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run.sh: unknown argument $arg (try -help)" >&2
		exit 2
		;;
	esac
done
if [[ "${BENCH_SMOKE:-0}" != 0 ]]; then smoke=1; fi

missing=()
if ! command -v go >/dev/null; then
	missing+=("go: Go 1.26 or later, https://go.dev/dl/")
fi
if [[ "${BENCH_HTTP:-1}" != 0 ]]; then
	if ! command -v wrk >/dev/null; then
		missing+=("wrk: apt-get install -y wrk")
	fi
	servers=",${BENCH_SERVERS:-e},"
	if [[ ${servers// /} != *,e,* ]]; then
		: # HAProxy (e) is not measured
	elif ! command -v haproxy >/dev/null; then
		missing+=("haproxy (2.5 or later, for jwt_verify): apt-get install -y haproxy")
	else
		v=$(haproxy -v 2>&1 | sed -n 's/.*[Vv]ersion \([0-9]*\)\.\([0-9]*\).*/\1 \2/p' | head -n1)
		read -r major minor <<<"${v:-0 0}"
		if ((major < 2 || (major == 2 && minor < 5))); then
			missing+=("haproxy 2.5 or later (found $(haproxy -v 2>&1 | head -n1)): jwt_verify appeared in 2.5")
		fi
	fi
fi
if ((${#missing[@]} > 0)); then
	echo "run.sh: missing prerequisites:" >&2
	printf '  - %s\n' "${missing[@]}" >&2
	echo "  (BENCH_HTTP=0 runs the Go benchmarks alone, which need only Go)" >&2
	exit 1
fi
if ! command -v taskset >/dev/null; then
	echo "run.sh: taskset (util-linux) not found: the servers will not be pinned to cores" >&2
fi
if ! command -v benchstat >/dev/null; then
	echo "run.sh: benchstat not found (optional): go install golang.org/x/perf/cmd/benchstat@latest" >&2
fi

tmp=$(mktemp -d)
pid=
cleanup() {
	# benchrun stops the servers it started when it gets SIGTERM.
	if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$tmp/benchrun" ./cmd/benchrun
args=()
if ((smoke)); then args+=(-smoke); fi
if ((fixedrate)); then args+=(-fixedrate); fi
"$tmp/benchrun" "${args[@]}" &
pid=$!
wait "$pid"
