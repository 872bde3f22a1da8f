#!/usr/bin/env bash
# Bulk throughput, 1 and 64 streams, through plait on each runtime beside a plain node:net relay and a
# direct connection, measured in the same run (the figure quoted in the core issue's closing note).
# Usage: bash bench/compare-bulk.sh   (about a minute; run on a quiet machine)
set -u
cd "$(dirname "$0")/.."
B=node_modules/.bin
bin() { case "$1" in node) echo "$B/node";; bun) echo "$B/bun";; deno) echo "$B/deno run -A";; esac; }
cleanup() { pkill -f "bench/procs/echo.ts --listen 127.0.0.1:9400" ; pkill -f "bench/procs/relay.ts --listen 127.0.0.1:9401"; pkill -f "listen 127.0.0.1:940[23]"; }
trap cleanup EXIT
bulk() { $B/bun bench/loadgen.ts --workload bulk --target "127.0.0.1:$1" --params "{\"streams\":$2,\"bytesPerStream\":$3}" | grep -o '"mbps":[0-9.]*' | cut -d: -f2 | xargs printf "%.0f"; }
$B/bun bench/procs/echo.ts --listen 127.0.0.1:9400 >/dev/null 2>&1 &
sleep 0.5
row() {
  printf "%-12s %8s MB/s %8s MB/s\n" "$1" "$(bulk "$2" 1 67108864)" "$(bulk "$2" 64 1048576)"
}
printf "%-12s %13s %13s\n" system "1 stream" "64 streams"
row direct 9400
$B/node bench/procs/relay.ts --listen 127.0.0.1:9401 --target 127.0.0.1:9400 >/dev/null 2>&1 &
sleep 0.7
row "node relay" 9401
pkill -f "bench/procs/relay.ts --listen 127.0.0.1:9401"
for rt in node bun deno; do
  $(bin $rt) src/cli/server.ts --listen 127.0.0.1:9402 --target 127.0.0.1:9400 --log-level warn 2>/dev/null &
  sleep 1.2
  $(bin $rt) src/cli/proxy.ts --listen 127.0.0.1:9403 --upstream 127.0.0.1:9402 --log-level warn 2>/dev/null &
  sleep 1.5
  row "plait-$rt" 9403
  pkill -INT -f "listen 127.0.0.1:940[23]"
  sleep 1
done
