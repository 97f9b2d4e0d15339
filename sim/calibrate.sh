#!/usr/bin/env bash
# Calibration: the same workload through a live local cluster (eddyctl
# bench against deploy/local's three nodes) and through the simulator, and
# the gap between their p50 and p99.
#
# usage: sim/calibrate.sh [--rate EVENTS_PER_S] [--cost-us US] [--capacity-cores C]
#                         [--duration-secs S] [--keys K]
#
# The workload: Poisson arrivals at --rate over --keys uniform keys, each
# event burning --cost-us of CPU in the `synthetic` processor, timed until
# processed (eddyctl bench --ack processed), on three nodes of
# --capacity-cores each with placement off. The simulator gets the same
# nodes, partitions, keys (hashed alike), rate and cost as a scenario.
# Release binaries come from target/release (built if missing). The
# cluster runs in a temporary directory on ports EDDY_LOCAL_BASE_PORT
# (default 7400) + 1..3 and is stopped on exit; the scenario, the bench
# and simulator output stay in that directory, printed at the end.
set -euo pipefail

rate=100 cost_us=2000 capacity=1.0 duration=30 keys=1000
while (($#)); do
  case $1 in
    --rate) rate=$2; shift 2 ;;
    --cost-us) cost_us=$2; shift 2 ;;
    --capacity-cores) capacity=$2; shift 2 ;;
    --duration-secs) duration=$2; shift 2 ;;
    --keys) keys=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "calibrate.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/target/release
if [[ ! -x $bin/eddyd || ! -x $bin/eddyctl || ! -x $bin/eddy-sim ]]; then
  echo "building eddyd, eddyctl and eddy-sim (release)..." >&2
  (cd "$repo" && cargo build --release -p eddy --bin eddyd --bin eddyctl && cargo build --release -p eddy-sim) >&2
fi

work=$(mktemp -d -t eddy-calibrate.XXXXXX)
export EDDY_LOCAL_DIR=$work/cluster
export EDDY_LOCAL_BASE_PORT=${EDDY_LOCAL_BASE_PORT:-7400}
export EDDY_BIN_DIR=$bin
export EDDY_NODE__CAPACITY_CORES=$capacity
export EDDY_PROCESSORS__SYNTHETIC_COST_US__CALIBRATE=$cost_us
stop() { "$repo/deploy/local/cluster.sh" down >/dev/null 2>&1 || true; }
trap stop EXIT

echo "starting three local nodes of $capacity cores (ports $((EDDY_LOCAL_BASE_PORT + 1))-$((EDDY_LOCAL_BASE_PORT + 3)))..." >&2
"$repo/deploy/local/cluster.sh" up >&2
b=$EDDY_LOCAL_BASE_PORT
export EDDY_ENDPOINTS=127.0.0.1:$((b + 1)),127.0.0.1:$((b + 2)),127.0.0.1:$((b + 3))
"$bin/eddyctl" policy set --mode off >&2

bench() {
  "$bin/eddyctl" bench --rate "$rate" --arrivals poisson --keys "$keys" --type calibrate --ack processed \
    --concurrency 256 --json --quiet "$@"
}
# A fresh cluster spends its first seconds electing leaders and opening
# processors; those seconds are not what either side models.
echo "warming up for 10 s..." >&2
bench --duration-secs 10 >"$work/warm-up.json"
echo "bench: $rate events/s of ${cost_us} us for ${duration} s..." >&2
bench --duration-secs "$duration" >"$work/bench.json"

cat >"$work/scenario.toml" <<TOML
# Written by sim/calibrate.sh: the workload of its live bench.
name = "calibrate"
seed = 1
duration_s = $duration
partitions = 16
replication_factor = 3

[[node_types]]
name = "local"
cores = $capacity
price_per_hour = 0.10
zones = ["zone-a", "zone-b", "zone-c"]
count = 3

[workload]
rate = { shape = "constant", events_per_s = $rate }
keys = $keys

[[workload.costs]]
event_type = "calibrate"
share = 1
cpu_ms = $(awk "BEGIN { print $cost_us / 1000 }")
distribution = { kind = "deterministic" }

[placement]
mode = "off"
TOML
"$bin/eddy-sim" run "$work/scenario.toml" --json >"$work/sim.json"

field() { grep -o "\"$2\":[0-9.eE+-]*" "$1" | head -1 | cut -d: -f2; }
live_p50=$(awk "BEGIN { print $(field "$work/bench.json" p50) / 1000 }")
live_p99=$(awk "BEGIN { print $(field "$work/bench.json" p99) / 1000 }")
sim_p50=$(field "$work/sim.json" p50_ms)
sim_p99=$(field "$work/sim.json" p99_ms)
awk -v lp50="$live_p50" -v lp99="$live_p99" -v sp50="$sim_p50" -v sp99="$sim_p99" 'BEGIN {
  printf "%-10s %10s %10s\n", "", "p50 ms", "p99 ms"
  printf "%-10s %10.2f %10.2f\n", "live", lp50, lp99
  printf "%-10s %10.2f %10.2f\n", "simulated", sp50, sp99
  printf "%-10s %+9.0f%% %+9.0f%%\n", "gap", (sp50 / lp50 - 1) * 100, (sp99 / lp99 - 1) * 100
}'
echo "acked $(field "$work/bench.json" acked) events at $(field "$work/bench.json" events_per_s)/s; files in $work" >&2
