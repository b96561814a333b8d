#!/bin/bash
# The restart baseline: the least a drain and the next daemon's start must cost on
# this host, with the same containers and jobs alive, timed by a plain script.
#
#   raw-restart.sh ROUNDS NODE DEPOT [RUNC_ROOT]
#
# Per round, two operations:
#   drain  an idle bare Node (NODE, the daemon's binary, waiting on a signal
#          handler): SIGUSR2 → its exit, as seen by its parent
#   start  what the next daemon cannot do without: start NODE (`node -e ''`), one
#          `runc list` of the runtime root (Linux), and read each container's state
#          in DEPOT (snapshot.json, each job's exit_status or pid, and whether that
#          pid is alive) with shell builtins
#
# Output, one line per operation: `<op> <total_us> <step>=<us> ...`, after each start
# `note state <containers> <jobs>` (what it read), `error <op> <message>` on failure, then `times` and the shell's `times` (script.ts parses it).
set -u

lap_start() { LAP=${EPOCHREALTIME/./}; OP_START=$LAP; LINE=; }
lap() { local t=${EPOCHREALTIME/./}; LINE+=" $1=$((t - LAP))"; LAP=$t; }
emit() { local t=${EPOCHREALTIME/./}; echo "$1 $((t - OP_START))$LINE"; }
fail() { echo "error $1 ${2//$'\n'/ }"; }

rounds=$1 node=$2 depot=$3 runc_root=${4:-}

drain() {
  local line
  coproc IDLE { exec "$node" -e "process.on('SIGUSR2', () => process.exit(0)); console.log('ready'); setInterval(() => {}, 1 << 30);"; }
  local pid=$IDLE_PID
  read -r line <&"${IDLE[0]}" || { fail drain "node did not start"; return 1; }
  lap_start
  kill -USR2 "$pid"
  wait "$pid" || { fail drain "node exited with $?"; return 1; }
  lap exit
  emit drain
}

start() {
  local out d j x pid containers=0 jobs=0 snapshot
  lap_start
  out=$("$node" -e '' 2>&1) || { fail start "node -e '': $out"; return 1; }
  lap node_start
  if [ -n "$runc_root" ]; then
    out=$(runc --root "$runc_root" list --format json 2>&1 > /dev/null) || { fail start "runc list: $out"; return 1; }
    lap runc_list
  fi
  for d in "$depot"/*/; do
    [ -e "$d/snapshot.json" ] || continue
    read -r -d '' snapshot < "$d/snapshot.json"
    ((containers++))
    for j in "$d"jobs/*/; do
      [ -d "$j" ] || continue
      ((jobs++))
      if [ -e "$j/exit_status" ]; then
        read -r x < "$j/exit_status"
      elif [ -e "$j/pid" ]; then
        read -r pid x < "$j/pid"
        [ -e "/proc/$pid" ] || fail start "job $j: process $pid is gone"
      fi
    done
  done
  lap read_state
  emit start
  echo "note state $containers $jobs"
}

for ((i = 0; i < rounds; i++)); do
  drain
  start
done
echo times
times
