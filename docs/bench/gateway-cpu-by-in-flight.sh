#!/bin/bash
# The gateway's CPU seconds per million events at saturation, for a given
# kafka.max_in_flight (argument, default 1): a gateway and one node on a fresh
# topic, `understudy-lab loadgen` sending batches of 100 as fast as they are taken
# (150,000 events), the gateway's utime+stime read from /proc before and after.
# Needs `scripts/infra up` and `cargo build --release`; run from the repo root.
set -euo pipefail
in_flight=${1:-1}
bin=$PWD/target/release/understudy
work=$(mktemp -d)
trap 'pkill -9 -f "$bin (gateway|node)" || true; rm -rf "$work"' EXIT
export UNDERSTUDY_CLUSTER=cpu-$in_flight-$RANDOM UNDERSTUDY_KAFKA__TOPIC=cpu-$in_flight-$RANDOM \
    UNDERSTUDY_KAFKA__MAX_IN_FLIGHT=$in_flight RUST_LOG=warn
UNDERSTUDY_GATEWAY__HTTP_PORT=18080 setsid "$bin" gateway >"$work/gateway.log" 2>&1 &
UNDERSTUDY_NODE__HTTP_PORT=18081 setsid "$bin" node >"$work/node.log" 2>&1 &
sleep 5
gateway=$(pgrep -f "$bin gateway")
ticks() { awk '{print $14 + $15}' "/proc/$gateway/stat"; }
before=$(ticks)
start=$(date +%s.%N)
"$bin-lab" loadgen --gateway http://127.0.0.1:18080 --rate 1000000 --batch-size 100 --count 150000 \
    --out "$work/acked.txt" >"$work/loadgen.log" 2>&1
end=$(date +%s.%N)
after=$(ticks)
events=$(wc -l <"$work/acked.txt")
awk -v b="$before" -v a="$after" -v t="$(getconf CLK_TCK)" -v n="$events" -v s="$start" -v e="$end" -v f="$in_flight" \
    'BEGIN { printf "max_in_flight=%s events=%d gateway_cpu_s_per_million=%.1f acked_per_s=%.0f\n", f, n, (a - b) / t * 1e6 / n, n / (e - s) }'
