#!/usr/bin/env bash
# Runs a local Eddy cluster: one eddyd process per node on 127.0.0.1.
#
#   cluster.sh up [--nodes N] [--dir DIR]   start N nodes (default 3; nodes
#                                           beyond 3 are workers) and wait
#                                           until the cluster is healthy
#   cluster.sh down                         stop every node (data is kept)
#   cluster.sh kill ID [--signal SIG]       send SIG (default KILL) to node ID
#   cluster.sh start ID                     start node ID again
#   cluster.sh status                       processes and cluster status
#
# Each node's manifest, data, log and pid file live under DIR/nodeID
# (DIR: --dir on any command, else $EDDY_LOCAL_DIR, else .eddy-local in the
# current directory). Node N listens on 127.0.0.1:(7100+N); set
# EDDY_LOCAL_BASE_PORT to move them. Binaries come from target/release,
# built if missing; set EDDY_BIN_DIR to use others.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dir=${EDDY_LOCAL_DIR:-$PWD/.eddy-local}
zones=(zone-a zone-b zone-c)
base=${EDDY_LOCAL_BASE_PORT:-7100}

die() { echo "cluster.sh: $*" >&2; exit 1; }

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

bins() {
  if [[ -n "${EDDY_BIN_DIR:-}" ]]; then
    bin_dir=$EDDY_BIN_DIR
  else
    bin_dir=$repo/target/release
    if [[ ! -x $bin_dir/eddyd || ! -x $bin_dir/eddyctl ]]; then
      echo "building eddyd and eddyctl (release; the first build takes a few minutes)..." >&2
      (cd "$repo" && cargo build --release --bin eddyd --bin eddyctl) >&2
    fi
  fi
  [[ -x $bin_dir/eddyd && -x $bin_dir/eddyctl ]] || die "no eddyd/eddyctl in $bin_dir"
}

endpoints() { echo "127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))"; }

# Writes DIR/nodeID/node.toml: the shipped manifest for nodes 1-3, a
# worker-only manifest for the others.
manifest() {
  local id=$1 node_dir=$dir/node$1
  mkdir -p "$node_dir"
  local ports=(-e "s/127\.0\.0\.1:710\([1-3]\)/127.0.0.1:$((base / 10))\1/g")
  (( base % 10 == 0 )) || die "EDDY_LOCAL_BASE_PORT must be a multiple of 10"
  if (( id <= 3 )); then
    sed "${ports[@]}" "$here/node$id.toml" > "$node_dir/node.toml"
  else
    sed "${ports[@]}" \
        -e "s/^id = 1$/id = $id/" \
        -e "s/^listen_addr = .*/listen_addr = \"127.0.0.1:$((base + id))\"/" \
        -e "s/^zone = .*/zone = \"${zones[$(( (id - 1) % 3 ))]}\"/" \
        -e 's/^roles = .*/roles = ["worker"]/' \
        -e "s/^# Eddy node 1 .*/# Eddy worker node $id, added by cluster.sh up --nodes./" \
        "$here/node1.toml" > "$node_dir/node.toml"
  fi
}

pid_of() {
  local file=$dir/node$1/pid pid
  [[ -f $file ]] || return 1
  pid=$(<"$file")
  # Only a live eddyd we started counts; a stale pid may belong to anyone.
  if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "eddyd run --config $dir/node$1/node.toml"; then
    echo "$pid"
  else
    rm -f "$file"
    return 1
  fi
}

start_node() {
  local id=$1 node_dir=$dir/node$1
  [[ -f $node_dir/node.toml ]] || die "node $id has no manifest under $node_dir; run up first"
  if pid_of "$id" >/dev/null; then
    echo "node $id already runs (pid $(pid_of "$id"))"
    return
  fi
  EDDY_NODE__DATA_DIR=$node_dir/data nohup "$bin_dir/eddyd" run --config "$node_dir/node.toml" \
    >>"$node_dir/eddyd.log" 2>&1 </dev/null &
  echo $! > "$node_dir/pid"
  echo "node $id started (pid $!, log $node_dir/eddyd.log)"
}

node_ids() {
  local f
  for f in "$dir"/node*/node.toml; do
    [[ -f $f ]] || continue
    f=${f%/node.toml}; echo "${f##*/node}"
  done | sort -n
}

cmd_up() {
  local nodes=3
  while (( $# )); do
    case $1 in
      --nodes) nodes=${2:?--nodes needs a number}; shift 2 ;;
      *) die "unknown option $1 for up" ;;
    esac
  done
  [[ $nodes =~ ^[0-9]+$ ]] && (( nodes >= 3 && nodes <= 9 )) || die "--nodes must be 3 to 9"
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
  bins
  for (( id = 1; id <= nodes; id++ )); do manifest "$id"; start_node "$id"; done
  echo "waiting for a controller leader and $nodes nodes up..."
  if ! "$bin_dir/eddyctl" --endpoints "$(endpoints)" wait --up "$nodes" --timeout-secs 90; then
    echo "the cluster did not become healthy; the node logs are under $dir/node*/eddyd.log" >&2
    exit 1
  fi
  echo
  echo "export EDDY_ENDPOINTS=$(endpoints)"
}

cmd_down() {
  (( $# == 0 )) || die "unknown option $1 for down"
  local id pid stopped=()
  for id in $(node_ids); do
    if pid=$(pid_of "$id"); then kill -CONT "$pid" 2>/dev/null || true; kill -TERM "$pid"; stopped+=("$id:$pid"); fi
  done
  for entry in "${stopped[@]+"${stopped[@]}"}"; do
    id=${entry%%:*} pid=${entry##*:}
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    rm -f "$dir/node$id/pid"
    echo "node $id stopped"
  done
  echo "data kept under $dir (delete it to start afresh)"
}

cmd_kill() {
  local id=${1:?kill needs a node id} signal=KILL
  shift
  while (( $# )); do
    case $1 in
      --signal) signal=${2:?--signal needs a name}; shift 2 ;;
      *) die "unknown option $1 for kill" ;;
    esac
  done
  local pid
  pid=$(pid_of "$id") || die "node $id is not running"
  kill -s "${signal#SIG}" "$pid"
  echo "sent SIG${signal#SIG} to node $id (pid $pid)"
}

cmd_start() {
  local id=${1:?start needs a node id}
  bins
  start_node "$id"
}

cmd_status() {
  local id pid
  for id in $(node_ids); do
    if pid=$(pid_of "$id"); then
      local state
      state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo "?")
      [[ $state == T ]] && state="stopped (paused)" || state="running"
      echo "node $id: pid $pid, $state"
    else
      echo "node $id: not running"
    fi
  done
  bins
  "$bin_dir/eddyctl" --endpoints "$(endpoints)" status || true
}

# --dir may come anywhere on the command line.
args=()
while (( $# )); do
  case $1 in
    --dir) dir=${2:?--dir needs a path}; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
set -- "${args[@]+"${args[@]}"}"
[[ -d $dir ]] && dir=$(cd "$dir" && pwd)

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  kill) shift; cmd_kill "$@" ;;
  start) shift; cmd_start "$@" ;;
  status) shift; cmd_status "$@" ;;
  -h|--help|help) usage ;;
  *) usage 2 ;;
esac
