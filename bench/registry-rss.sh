#!/usr/bin/env bash
# Idle RSS per connection of one gateway on its own redis-server, with the
# connection registry off and on, alternating (issue 10's measurement):
#
#   bench/registry-rss.sh [ROUNDS] [CONNS]      (defaults 5 and 19000)
#
# Each run: a fresh redis-server on a free loopback port (no persistence),
# a gateway with --registry=false or true, 1.5 s to settle, then
# `wsload idle --conns CONNS --channels 100 --server-pid PID`, whose
# rss_per_conn is (RSS when every connection is subscribed - RSS before
# any) / connections. Prints each run and the medians. WSHUB_ARGS adds
# gateway flags (e.g. --jwt-secret ...); WSLOAD_ARGS wsload flags (e.g.
# --jwt-secret ... --jwt-channels '*'); WSLOAD_QUERY a ?query for the
# connections. Prints the figure right after setup and at the end of the
# hold (once setup garbage is collected and returned). Needs redis-server
# and python3.
set -euo pipefail
rounds=${1:-5}
conns=${2:-19000}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$root" && go build -o "$work/wshub" ./cmd/wshub && go build -o "$work/wsload" ./cmd/wsload)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

run() { # registry(true|false) tag
	local rp wp ap rpid wpid
	rp=$(free_port) wp=$(free_port) ap=$(free_port)
	redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis-$2.log" 2>&1 &
	rpid=$!
	for _ in $(seq 50); do redis-cli -p "$rp" ping >/dev/null 2>&1 && break; sleep 0.1; done
	# shellcheck disable=SC2086
	"$work/wshub" --redis "redis://127.0.0.1:$rp" --registry="$1" --addr "127.0.0.1:$wp" \
		--admin-addr "127.0.0.1:$ap" ${WSHUB_ARGS:-} >"$work/wshub-$2.log" 2>&1 &
	wpid=$!
	for _ in $(seq 50); do (echo >"/dev/tcp/127.0.0.1/$wp") 2>/dev/null && break; sleep 0.1; done
	sleep 1.5
	"$work/wsload" idle --conns "$conns" --channels 100 --target "ws://127.0.0.1:$wp/ws${WSLOAD_QUERY:-}" \
		--server-pid "$wpid" --duration 5s --quiet --json "$work/$2.json" ${WSLOAD_ARGS:-} >/dev/null || true
	kill "$wpid"; wait "$wpid" 2>/dev/null || true
	kill "$rpid"; wait "$rpid" 2>/dev/null || true
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["server"]; print(sys.argv[2], s["rss_per_conn"], s["rss_per_conn_done"])' \
		"$work/$2.json" "$1" | tee -a "$work/all"
}

for i in $(seq "$rounds"); do
	run false "off$i"
	run true "on$i"
done
python3 - "$work/all" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    reg, per, done = line.split()
    runs.setdefault(reg, ([], []))
    runs[reg][0].append(float(per))
    runs[reg][1].append(float(done))
for reg, (ready, done) in runs.items():
    print(f"--registry={reg}: median {statistics.median(ready):.0f} B/conn after setup, {statistics.median(done):.0f} at the end of the hold, over {len(done)} runs (end: {min(done):.0f}-{max(done):.0f})")
EOF
