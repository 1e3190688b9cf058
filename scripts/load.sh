#!/usr/bin/env bash
# Load test for issue #3: the tokenward binary against a bare
# httputil.ReverseProxy in front of the same upstream, with wrk, on loopback.
#
# Every request carries one of TOKENS distinct valid RS256 tokens, in
# rotation (scripts/load.lua). Runs alternate, bare then tokenward, REPS
# times, after a warm-up of each. Prints a markdown table of requests/s, p50
# and p99 per run, and the medians with tokenward's share of the bare
# throughput (target: >= 0.80).
#
#   scripts/load.sh                      # 3 x (10s + 10s) + warm-up: about 1.5 min
#   DURATION=5s REPS=2 scripts/load.sh   # quicker
#   TOKENWARD_CACHE_SIZE=0 scripts/load.sh   # without the verified-token cache
#
# TOKENWARD_* variables set here reach the binary, except those loadenv sets
# (issuer, audience, scope, upstream, addresses, logging).
#
# Needs go and wrk (apt-get install -y wrk). Uses loopback only, free ports.
set -euo pipefail

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
REPS=${REPS:-3}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
TOKENS=${TOKENS:-300}

cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "load.sh: wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }

work=$(mktemp -d)
envpid=
cleanup() {
	if [[ -n $envpid ]]; then
		kill "$envpid" 2>/dev/null || true
		wait "$envpid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/loadenv" ./scripts/loadenv
tokenward_flag=(-tokenward "$work/tokenward")
if ! go build -o "$work/tokenward" ./cmd/tokenward 2>"$work/build.log"; then
	echo "load.sh: WARNING: ./cmd/tokenward does not build; measuring tokenward's Proxy in a child process instead:" >&2
	cat "$work/build.log" >&2
	tokenward_flag=()
fi

"$work/loadenv" -dir "$work" -tokens "$TOKENS" "${tokenward_flag[@]}" 2>"$work/loadenv.log" &
envpid=$!
# loadenv writes env.sh once both proxies answer; bounded wait.
for _ in $(seq 300); do
	[[ -f $work/env.sh ]] && break
	if ! kill -0 "$envpid" 2>/dev/null; then
		echo "load.sh: loadenv exited:" >&2
		cat "$work/loadenv.log" >&2
		exit 1
	fi
	sleep 0.1
done
[[ -f $work/env.sh ]] || { echo "load.sh: loadenv not ready after 30s" >&2; cat "$work/loadenv.log" >&2; exit 1; }
# shellcheck source=/dev/null
source "$work/env.sh"

# run TARGET_URL DURATION: prints "rps p50_us p99_us", fails on any error.
run() {
	local out result
	out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$2" --timeout 5s -s scripts/load.lua "$1" -- "$TOKENS_FILE" "$LOAD_PATH")
	result=$(grep '^RESULT ' <<<"$out") || { echo "load.sh: no result from wrk:" >&2; echo "$out" >&2; exit 1; }
	if ! grep -q 'non2xx=0 socket_errors=0' <<<"$result"; then
		echo "load.sh: errors against $1: $result" >&2
		exit 1
	fi
	sed -E 's/.*rps=([0-9.]+) p50_us=([0-9]+) p99_us=([0-9]+).*/\1 \2 \3/' <<<"$result"
}

echo "warming up ($WARMUP each)..." >&2
run "$BARE_URL" "$WARMUP" >/dev/null
run "$TOKENWARD_URL" "$WARMUP" >/dev/null

results=()
for rep in $(seq "$REPS"); do
	for target in bare tokenward; do
		url=$BARE_URL
		[[ $target == tokenward ]] && url=$TOKENWARD_URL
		echo "run $rep/$REPS: $target ($DURATION)..." >&2
		results+=("$target $rep $(run "$url" "$DURATION")")
	done
done

echo
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $TOKENS distinct RS256 tokens in rotation, $(nproc) CPUs, tokenward: $TOKENWARD_RUN, TOKENWARD_CACHE_SIZE=${TOKENWARD_CACHE_SIZE:-(default)}"
echo
echo "| run | proxy | requests/s | p50 (ms) | p99 (ms) |"
echo "|---|---|---:|---:|---:|"
for r in "${results[@]}"; do
	read -r target rep rps p50 p99 <<<"$r"
	awk -v t="$target" -v n="$rep" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
		'BEGIN { printf "| %d | %s | %.0f | %.2f | %.2f |\n", n, t, rps, p50 / 1000, p99 / 1000 }'
done
printf '%s\n' "${results[@]}" | awk '
	function median(a, n,   i, j, t) {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{ n[$1]++; rps[$1, n[$1]] = $3; p50[$1, n[$1]] = $4; p99[$1, n[$1]] = $5 }
	END {
		for (t in n) {
			for (i = 1; i <= n[t]; i++) { a[i] = rps[t, i]; b[i] = p50[t, i]; c[i] = p99[t, i] }
			mr[t] = median(a, n[t]); m50[t] = median(b, n[t]); m99[t] = median(c, n[t])
		}
		printf "| median | bare | %.0f | %.2f | %.2f |\n", mr["bare"], m50["bare"] / 1000, m99["bare"] / 1000
		printf "| median | tokenward | %.0f | %.2f | %.2f |\n", mr["tokenward"], m50["tokenward"] / 1000, m99["tokenward"] / 1000
		ratio = mr["tokenward"] / mr["bare"]
		printf "\ntokenward / bare throughput (medians): %.2fx (target >= 0.80: %s)\n", ratio, (ratio >= 0.8 ? "met" : "MISSED")
	}'
