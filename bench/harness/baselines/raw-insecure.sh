#!/bin/bash
# The insecure baseline for Run and staging: the same host operations the
# insecure backend makes (src/backends/insecure/tasks.ts, src/jobs/), run one
# after another by a plain script: folders, tar pipes, a bash running the script
# with its output in files that are then read back, rm -rf.
#
#   raw-insecure.sh exec-true N      N x `/bin/bash -c true`
#   raw-insecure.sh stage N          N x (folders, copy_in, run, read output, copy_out, remove)
#
# Output, one line per operation: `<op> <total_us> <step>=<us> ...`, then `times`
# and the shell's `times` (the second line: children user, sys).
# Environment: RAW_DIR, and for stage APP_DIR OUT_DIR STAGE_SCRIPT WORKER.
set -u

lap_start() { LAP=${EPOCHREALTIME/./}; OP_START=$LAP; LINE=; }
lap() { local t=${EPOCHREALTIME/./}; LINE+=" $1=$((t - LAP))"; LAP=$t; }
emit() { local t=${EPOCHREALTIME/./}; echo "$1 $((t - OP_START))$LINE"; }

exec_true() {
  local n=$1 i
  for ((i = 0; i < n; i++)); do
    lap_start
    /bin/bash -c true || { echo "error exec /bin/bash -c true failed"; exit 1; }
    lap exec
    emit exec
  done
}

stage() {
  local n=$1 i p root
  for ((i = 0; i < n; i++)); do
    p=$RAW_DIR/w${WORKER}-$i
    root=$p/root
    echo "begin w${WORKER}-$i"
    lap_start
    mkdir -p "$root" "$p/jobs/1" "$p/run"
    lap create
    mkdir -p "$root/app"
    bash -c 'set -o pipefail; tar -c --hard-dereference -C "$1" -- "$2" | tar -x -p -C "$3"' copy "$APP_DIR" . "$root/app" || echo "error stage copy_in"
    lap copy_in
    (cd "$root" && HOME=$root /bin/bash -c "$STAGE_SCRIPT" > "$p/jobs/1/stdout" 2> "$p/jobs/1/stderr" < /dev/null) || echo "error stage script"
    lap run
    cat "$p/jobs/1/stdout" "$p/jobs/1/stderr" > /dev/null
    lap read_output
    mkdir -p "$OUT_DIR/w${WORKER}-$i"
    bash -c 'set -o pipefail; tar -c --hard-dereference -C "$1" -- "$2" | tar -x -p -C "$3"' copy "$root" droplet.tar "$OUT_DIR/w${WORKER}-$i" || echo "error stage copy_out"
    lap copy_out
    rm -rf "$p" "$OUT_DIR/w${WORKER}-$i"
    lap destroy
    emit stage_steps
    echo "end w${WORKER}-$i"
  done
}

cmd=${1:-}
shift || true
case $cmd in
  exec-true) exec_true "${1:-1}" ;;
  stage) stage "${1:-1}" ;;
  *) echo "usage: raw-insecure.sh exec-true|stage N" >&2; exit 2 ;;
esac
echo times
times
