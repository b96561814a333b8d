#!/bin/bash
# The Linux baseline: the same runc and host-tool calls that the daemon's create,
# destroy, Run and staging requests make (src/backends/linux/container/create.ts,
# destroy.ts, network/, disk/, copy.ts, limits.ts), run one after another by a
# plain script, with no daemon, no protocol, no worker pool, no snapshots.
# Files the daemon writes in-process are written with shell builtins; the few
# coreutils the daemon does without (mkdir, chown, rmdir, rm) cost a fork here
# that the daemon does not pay, so this baseline errs on the slow side.
#
#   raw-linux.sh cycle N           N x (create, destroy); N=0: until $UNTIL_US (epoch µs)
#   raw-linux.sh create N          N creates, ids printed, containers kept
#   raw-linux.sh destroy ID...     destroy the given containers
#   raw-linux.sh exec-true N RUNC_ROOT ID UID    N x `runc exec --user UID:UID ID /bin/true`
#   raw-linux.sh exec-job N RUNC_ROOT ID UID     N x `runc exec` of the processes a Run starts in the
#                                  container: the job wrapper ($JOB_WRAPPER) and bash reading `true`
#   raw-linux.sh exec-out RUNC_ROOT ID UID BYTES  one job writing BYTES of zeros into a file in
#                                  the depot (as a Spawn's output goes), then reading it back
#   raw-linux.sh stage N           N x (create with bind mount, limits, net_in, copy_in,
#                                  run script with its stdout read back, copy_out, destroy)
#
# Output, one line per operation: `<op> <total_us> <step>=<us> ...`, then
# `cpu <children user s> <children sys s>` at the end; `error <op> <message>` on failure.
#
# The veth's host end w-<id>-0 and the ifb w-<id>-2 are made at create and deleted at
# destroy as the daemon's network/veth.ts does (hostEndBatch, deleteIfaces).
#
# Settings come from the environment (bench/harness/baselines/raw-linux.ts sets them):
# RAW_DIR DEPOT ROOTFS RUNC_ROOT CG_PARENTS (':'-separated, one per hierarchy)
# CG_PIDS CG_MEMORY CG_CPU CG_UNIFIED (parents in those hierarchies) CONFIG_TEMPLATE
# RESOLV MTU NET_BASE (first /30 as an integer) NET_INDEX UID_BASE, and for stage:
# APP_DIR OUT_DIR STAGE_SCRIPT LIMIT_MEM LIMIT_DISK LIMIT_CPU PORT_BASE.
set -u

us() { local t=${EPOCHREALTIME/./}; echo "$t"; }
# A lap timer in builtins only: `lap NAME` appends NAME=<µs since the last lap>.
lap_start() { LAP=${EPOCHREALTIME/./}; OP_START=$LAP; LINE=; }
lap() { local t=${EPOCHREALTIME/./}; LINE+=" $1=$((t - LAP))"; LAP=$t; }
emit() { local t=${EPOCHREALTIME/./}; echo "$1 $((t - OP_START))$LINE"; }
fail() { echo "error $1 ${2//$'\n'/ }"; }

# Dotted quad of an integer address, into REPLY (no subshell: that would fork).
ip_of() { local n=$1; REPLY="$((n >> 24 & 255)).$((n >> 16 & 255)).$((n >> 8 & 255)).$((n & 255))"; }

read -r -d '' TEMPLATE < "$CONFIG_TEMPLATE" || true
read -r -d '' LOWER_PASSWD < "$ROOTFS/etc/passwd" || true
read -r -d '' LOWER_GROUP < "$ROOTFS/etc/group" || true
IFS=: read -r -a CG_PARENT_LIST <<< "$CG_PARENTS"
SHELL_PATH=/bin/sh
[ -e "$ROOTFS/bin/bash" ] && SHELL_PATH=/bin/bash
SEQ=0
PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# A fresh id, announced before anything is made for it (the driver's cleanup list).
new_id() {
  local a=0123456789abcdefghijklmnopqrstuv s=r i
  for ((i = 0; i < 10; i++)); do s+=${a:RANDOM % 32:1}; done
  ID=$s
  echo "begin $ID"
}

# create ID SLOT: the container's /30 is NET_BASE + 4*SLOT, its uid UID_BASE + SLOT.
create() {
  local id=$1 slot=$2 out
  local p=$RAW_DIR/$id
  local net=$((NET_BASE + 4 * slot))
  local hostip containerip uid=$((UID_BASE + slot))
  ip_of $((net + 1)); hostip=$REPLY
  ip_of $((net + 2)); containerip=$REPLY
  lap_start
  mkdir -p "$p/run" "$p/etc" "$p/bundle" || { fail create "mkdir $p"; return 1; }
  lap folder
  out=$(btrfs subvolume create "$p/tmp" 2>&1) || { fail create "btrfs subvolume create: $out"; return 1; }
  lap subvolume
  SUBVOL=$(btrfs inspect-internal rootid "$p/tmp" 2>&1) || { fail create "rootid: $SUBVOL"; return 1; }
  echo "$SUBVOL" > "$p/run/subvol"
  lap rootid
  mkdir -p "$p/tmp/rootfs/etc" "$p/tmp/rootfs/home/vcap" "$p/tmp/work" "$p/mnt"
  echo "$id" > "$p/tmp/rootfs/etc/hostname"
  printf '127.0.0.1 localhost\n%s %s\n' "$containerip" "$id" > "$p/tmp/rootfs/etc/hosts"
  printf '%s' "$RESOLV" > "$p/tmp/rootfs/etc/resolv.conf"
  printf '%s\nvcap:x:%s:%s::/home/vcap:%s\n' "$LOWER_PASSWD" $uid $uid $SHELL_PATH > "$p/tmp/rootfs/etc/passwd"
  printf '%s\nvcap:x:%s:\n' "$LOWER_GROUP" $uid > "$p/tmp/rootfs/etc/group"
  chown $uid:$uid "$p/tmp/rootfs/home/vcap"
  lap etc_files
  out=$(mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$p/tmp/rootfs,workdir=$p/tmp/work" "$p/mnt" 2>&1) || { fail create "mount overlay: $out"; return 1; }
  lap overlay
  local cfg=${TEMPLATE//@ROOT@/$p/mnt}
  cfg=${cfg//@HOSTNAME@/$id}
  cfg=${cfg//@ID@/$id}
  printf '%s' "$cfg" > "$p/bundle/config.json"
  lap bundle
  # No --pid-file (runc opens it O_SYNC, a disk flush): the init's pid from runc's
  # state file, read with builtins, as the daemon reads it.
  # run --detach: the init starts at once (one runc call; the network comes after, as in the daemon).
  runc --log "$p/run/runtime.log" --root "$RUNC_ROOT" run --detach --bundle "$p/bundle" "$id" < /dev/null > /dev/null 2>&1 \
    || { fail create "runc run: $(tail -n 2 "$p/run/runtime.log" 2>/dev/null)"; return 1; }
  local pid state
  read -r state < "$RUNC_ROOT/$id/state.json"
  pid=${state#*\"init_process_pid\":}
  pid=${pid%%[!0-9]*}
  printf '%s\n' "$pid" > "$p/run/wshd.pid"
  local stat
  read -r stat < "/proc/$pid/stat"
  lap runc_run
  out=$(iptables-restore -w 10 --noflush 2>&1 <<EOF
*filter
:warden-i-$id - [0:0]
:warden-i-$id-log - [0:0]
-A warden-i-$id-log -m conntrack --ctstate INVALID,NEW,UNTRACKED -j LOG --log-prefix "warden-i-$id "
-A warden-i-$id-log -j ACCEPT
-A warden-i-$id -g warden-default
-A warden-instances -i w-$id-0 -g warden-i-$id
COMMIT
*nat
:warden-i-$id - [0:0]
-A warden-prerouting -p tcp -j warden-i-$id
COMMIT
EOF
  ) || { fail create "iptables-restore: $out"; return 1; }
  lap iptables
  out=$(ip -batch - 2>&1 <<EOF
link add w-$id-0 mtu $MTU type veth peer name w-$id-1 mtu $MTU netns $pid
link set dev w-$id-0 addrgenmode none
addr add $hostip/30 brd + dev w-$id-0
link set w-$id-0 up
link add w-$id-2 mtu $MTU type ifb
link set w-$id-2 up
EOF
  ) || { fail create "ip -batch: $out"; return 1; }
  echo 1 > "/proc/sys/net/ipv4/conf/w-$id-0/route_localnet"
  echo 1 > "/proc/sys/net/ipv4/conf/w-$id-0/rp_filter"
  echo 1 > "/proc/sys/net/ipv6/conf/w-$id-0/disable_ipv6" 2>/dev/null
  out=$(nsenter --net="/proc/$pid/ns/net" -- ip -batch - 2>&1 <<EOF
link set lo up
addr add $containerip/30 brd + dev w-$id-1
link set w-$id-1 up
route replace default via $hostip dev w-$id-1
EOF
  ) || { fail create "nsenter ip -batch: $out"; return 1; }
  lap veth
  printf 'id="%s"\nhandle="%s"\nnetwork_host_ip="%s"\nnetwork_container_ip="%s"\nuser_uid="%s"\ninit_pid="%s"\n' \
    "$id" "$id" "$hostip" "$containerip" $uid "$pid" > "$p/etc/config"
  INIT_PID=$pid CONTAINER_IP=$containerip VCAP_UID=$uid
  lap settings
  emit create
}

destroy() {
  local id=$1 p=$RAW_DIR/$1 out pid subvol=
  lap_start
  if [ -n "${CG_UNIFIED:-}" ] && [ -e "$CG_UNIFIED/instance-$id/cgroup.kill" ]; then
    echo 1 > "$CG_UNIFIED/instance-$id/cgroup.kill"
  elif [ -e "$CG_PIDS/instance-$id/cgroup.procs" ]; then
    while read -r pid; do kill -9 "$pid" 2>/dev/null; done < "$CG_PIDS/instance-$id/cgroup.procs"
  fi
  lap kill
  out=$(runc --root "$RUNC_ROOT" delete --force "$id" 2>&1) || [[ $out == *"does not exist"* ]] || fail destroy "runc delete: $out"
  lap runc_delete
  # A batch that meets another process's commit can fail as a whole; like the daemon
  # (network/iptables.ts applyFresh), try again rather than leave the chains behind.
  local try ok=
  for try in 1 2 3; do
  out=$(iptables-restore -w 10 --noflush 2>&1 <<EOF
*filter
-D warden-instances -i w-$id-0 -g warden-i-$id
-F warden-i-$id
-X warden-i-$id
-F warden-i-$id-log
-X warden-i-$id-log
COMMIT
*nat
-D warden-prerouting -p tcp -j warden-i-$id
-F warden-i-$id
-X warden-i-$id
COMMIT
EOF
  ) && { ok=1; break; }
  done
  [ -n "$ok" ] || fail destroy "iptables-restore: $out"
  lap iptables
  # The interfaces that are still there, in one batch, as network/veth.ts deleteIfaces does:
  # the ifb always (deleting one costs the kernel tens of ms), the host end of the veth
  # only now and then (the kernel removes it with the namespace runc delete ended).
  # One may vanish between the check and the delete: only one still there is a failure.
  local ifaces=() batch= n
  for n in "w-$id-2" "w-$id-0"; do [ -e "/sys/class/net/$n" ] && ifaces+=("$n") && batch+="link del $n"$'\n'; done
  if ((${#ifaces[@]})); then
    out=$(ip -force -batch - 2>&1 <<< "$batch") || for n in "${ifaces[@]}"; do [ ! -e "/sys/class/net/$n" ] || { fail destroy "ip link del: $out"; break; }; done
  fi
  lap veth
  local left=() d
  for d in "${CG_PARENT_LIST[@]}"; do [ -d "$d/instance-$id" ] && left+=("$d/instance-$id"); done
  if ((${#left[@]})); then out=$(rmdir "${left[@]}" 2>&1) || fail destroy "rmdir cgroups: $out"; fi
  lap cgroups
  out=$(umount "$p/mnt" 2>&1) || fail destroy "umount: $out"
  lap umount
  [ -e "$p/run/subvol" ] && read -r subvol < "$p/run/subvol"
  out=$(btrfs subvolume delete --commit-after "$p/tmp" 2>&1) || fail destroy "subvolume delete: $out"
  if [ -n "$subvol" ]; then
    out=$(btrfs subvolume sync "$DEPOT" "$subvol" 2>&1) || fail destroy "subvolume sync: $out"
    btrfs qgroup destroy "0/$subvol" "$DEPOT" > /dev/null 2>&1
  fi
  lap subvolume
  rm -rf "$p"
  lap folder
  emit destroy
  echo "end $id"
}

cycle() {
  local n=$1 i=0
  while :; do
    if ((n > 0)); then ((i++ < n)) || break; else (($(us) < UNTIL_US)) || break; fi
    new_id
    if create "$ID" "$NET_INDEX"; then destroy "$ID"; else destroy "$ID" | grep '^end '; exit 1; fi
  done
}

create_many() {
  local n=$1 i
  for ((i = 0; i < n; i++)); do
    new_id
    create "$ID" $((NET_INDEX + i)) || { destroy "$ID" | grep '^end '; exit 1; }
  done
}

exec_true() {
  local n=$1 root=$2 id=$3 uid=$4 i out
  for ((i = 0; i < n; i++)); do
    lap_start
    out=$(runc --root "$root" exec --user "$uid:$uid" "$id" /bin/true 2>&1) || { fail exec "$out"; exit 1; }
    lap exec
    emit exec
  done
}

# What a Run of `true` starts inside the container (jobs/launch.ts): the wrapper bash,
# which forks the job's bash reading the script from stdin and writes how it ended to
# fd 3; without the daemon's side (request, supervisor, job files, exit status, reply).
exec_job() {
  local n=$1 root=$2 id=$3 uid=$4 i out
  for ((i = 0; i < n; i++)); do
    lap_start
    out=$(runc --root "$root" exec --user "$uid:$uid" --preserve-fds 1 "$id" /bin/bash -c "$JOB_WRAPPER" warden-job 3>/dev/null 2>&1 <<< true) \
      || { fail exec "$out"; exit 1; }
    lap exec
    emit exec
  done
}

exec_out() {
  local root=$1 id=$2 uid=$3 bytes=$4 out
  local file=$RAW_DIR/exec-out-$$-$RANDOM
  lap_start
  out=$(runc --root "$root" exec --user "$uid:$uid" "$id" "$SHELL_PATH" -c "head -c $bytes /dev/zero" 2>&1 >"$file") || { rm -f "$file"; fail exec_out "$out"; exit 1; }
  lap exec
  cat "$file" >/dev/null
  lap read
  rm -f "$file"
  emit exec_out
}

stage() {
  local n=$1 i out port
  for ((i = 0; i < n; i++)); do
    new_id
    create "$ID" "$NET_INDEX" || { destroy "$ID" | grep '^end '; exit 1; }
    local id=$ID p=$RAW_DIR/$ID
    lap_start
    # limit_memory: lowering from unlimited, so the limit first, then memsw (cgroups.ts setMemoryLimit);
    # then cpu shares, then the qgroup.
    echo "$LIMIT_MEM" > "$CG_MEMORY/instance-$id/memory.limit_in_bytes"
    echo "$LIMIT_MEM" > "$CG_MEMORY/instance-$id/memory.memsw.limit_in_bytes" 2>/dev/null
    echo "$LIMIT_CPU" > "$CG_CPU/instance-$id/cpu.shares"
    out=$(btrfs qgroup limit "$LIMIT_DISK" "$p/tmp" 2>&1) || fail stage "qgroup limit: $out"
    lap limits
    port=$((PORT_BASE + NET_INDEX))
    iptables -w 10 -t nat -C "warden-i-$id" -p tcp -m tcp --dport $port -j DNAT --to-destination "$CONTAINER_IP:8080" 2>/dev/null
    out=$(iptables -w 10 -t nat -A "warden-i-$id" -p tcp -m tcp --dport $port -j DNAT --to-destination "$CONTAINER_IP:8080" 2>&1) || fail stage "net_in: $out"
    lap net_in
    # copy.ts: a tar pipe into `runc exec` as vcap (the container end runs inside, like a job).
    tar -c --hard-dereference -C "$APP_DIR" . | runc --root "$RUNC_ROOT" exec --user "$VCAP_UID:$VCAP_UID" --cwd / --env "$PATH_ENV" "$id" \
      /bin/sh -c 'mkdir -p -- "$1" && exec tar -x -p --no-overwrite-dir -C "$1"' warden-copy-in /home/vcap/app || fail stage "copy_in"
    lap copy_in
    runc --root "$RUNC_ROOT" exec --user "$VCAP_UID:$VCAP_UID" --cwd /home/vcap "$id" /bin/bash -c "$STAGE_SCRIPT" \
      > "$p/run/stdout" 2> "$p/run/stderr" < /dev/null || fail stage "script"
    lap run
    cat "$p/run/stdout" "$p/run/stderr" > /dev/null
    lap read_output
    mkdir -p "$OUT_DIR/$id"
    runc --root "$RUNC_ROOT" exec --user "$VCAP_UID:$VCAP_UID" --cwd / --env "$PATH_ENV" "$id" tar -c --hard-dereference -C /home/vcap droplet.tar \
      | tar -x -v --no-same-owner --quoting-style=literal -C "$OUT_DIR/$id" > /dev/null || fail stage "copy_out"
    lap copy_out
    emit stage_steps
    destroy "$id"
    rm -rf "$OUT_DIR/$id"
  done
}

cmd=${1:-}
shift || true
case $cmd in
  cycle) cycle "${1:-1}" ;;
  create) create_many "${1:-1}" ;;
  destroy) for id in "$@"; do destroy "$id"; done ;;
  exec-true) exec_true "$@" ;;
  exec-job) exec_job "$@" ;;
  exec-out) exec_out "$@" ;;
  stage) stage "${1:-1}" ;;
  *) echo "usage: raw-linux.sh cycle|create|destroy|exec-true|exec-job|exec-out|stage ..." >&2; exit 2 ;;
esac
# CPU of every process this script ran (the second line of `times`: children user, sys).
echo times
times
