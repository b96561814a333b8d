#!/bin/bash
# Runs one Warden job, detached from the daemon so that the job outlives a
# daemon restart. The daemon starts this script in a session of its own; the
# script forks the real supervisor into the background and exits at once, so
# the supervisor is not a child of the daemon and signals for the daemon's
# process group never reach it.
#
#   job-supervisor.sh JOB_DIR DISCARD_OUTPUT(0|1) -- ARGV...
#
# ARGV reads the job's script from JOB_DIR/script on stdin (as the original's
# `/bin/bash` did) and runs in the current directory. In JOB_DIR it leaves:
#   stdout, stderr   the job's output (empty when output is discarded)
#   pid              "<job pid> <job start time> <supervisor pid> <supervisor start time>"
#   exit_status      the job's exit status (128+N after signal N) once it ended.
#                    One small write: readers treat an empty file as not there yet.
# Every step avoids forking a process it can do without: on a loaded host each
# exec costs milliseconds, and this runs for every job.
set -u
dir=$1 discard=$2
shift 3

# Out of the daemon's own cgroup (Linux backend) before forking the supervisor:
# the supervisor outlives the daemon, whose group is removed when it exits.
if [ -n "${WARDEN_SUPERVISOR_CGROUP_PROCS:-}" ]; then
  echo $$ > "$WARDEN_SUPERVISOR_CGROUP_PROCS" || exit 1
  unset WARDEN_SUPERVISOR_CGROUP_PROCS
fi

start_time=
read_start_time() { # field 22 of /proc/PID/stat; the command name may hold spaces
  local stat rest
  read -r stat < "/proc/$1/stat" || return 1
  rest=${stat##*) }
  set -- $rest
  start_time=${20}
}

supervise() {
  : > "$dir/stdout"
  : > "$dir/stderr"
  local out=$dir/stdout err=$dir/stderr
  if [ "$discard" = 1 ]; then out=/dev/null err=/dev/null; fi
  # Job control puts the job in a process group of its own, so it can be
  # signalled as a group without touching this supervisor.
  set -m
  "$@" < "$dir/script" > "$out" 2> "$err" &
  local child=$! self=$BASHPID
  set +m
  read_start_time "$child"; local child_start=$start_time
  read_start_time "$self"
  echo "$child $child_start $self $start_time" > "$dir/pid"
  wait "$child"
  echo "$?" > "$dir/exit_status"
}

supervise "$@" < /dev/null > /dev/null 2>&1 &
