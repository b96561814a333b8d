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
#   exit_status      the job's exit status once it ended: its own status when it
#                    exited, 255 when a signal ended it (the original's wshd sent
#                    no status then and its client reported 255; `exit 137` stays
#                    137). One small write: readers treat an empty file as not there yet.
#   job_end          (optional) created by ARGV when ARGV is not the job itself but
#                    runs it (Linux: runc exec of a wrapper in the container); the
#                    wrapper writes there how the job ended, in the same form as
#                    child_end below.
#   (fd 3)           with WARDEN_JOB_FD3=NAME in the environment, ARGV gets
#                    JOB_DIR/NAME as fd 3 (the Linux backend's job_end, below)
#   child_end        how ARGV ended, as bash's `jobs -l` tells it in the C locale
#                    ("Done", "Exit N", or the signal's name): bash's exit status
#                    alone cannot tell `exit 137` from SIGKILL.
# Every step avoids forking a process it can do without: on a loaded host each
# exec costs milliseconds, and this runs for every job.
#
# job-starter.sh sources this file with WARDEN_SUPERVISOR_LIB=1 (its functions
# only) and runs enter_groups and supervise in a subshell of its own instead.

# Into the job's cgroups first (Linux backend: the container's jobs memory group;
# one cgroup.procs path a line), before the supervisor is forked: every page the
# supervisor and its children allocate is then charged there. The container's
# first job creates the group (mkdir, the one fork here); one that cannot be
# joined is skipped: the job then runs charged to the daemon. Then out of the
# daemon's own cgroup (Linux backend): the supervisor outlives the daemon, whose
# group is removed when it exits; fails (1) when that cannot be done. Sets fd3.
enter_groups() {
  if [ -n "${WARDEN_JOB_CGROUP_PROCS:-}" ]; then
    saved_ifs=$IFS
    IFS=$'\n'
    set -f
    for procs in $WARDEN_JOB_CGROUP_PROCS; do
      [ -d "${procs%/*}" ] || mkdir -p "${procs%/*}" 2>/dev/null
      { echo $BASHPID > "$procs"; } 2>/dev/null || true
    done
    set +f
    IFS=$saved_ifs
    unset WARDEN_JOB_CGROUP_PROCS procs saved_ifs
  fi
  fd3=${WARDEN_JOB_FD3:-}
  unset WARDEN_JOB_FD3
  if [ -n "${WARDEN_SUPERVISOR_CGROUP_PROCS:-}" ]; then
    echo $BASHPID > "$WARDEN_SUPERVISOR_CGROUP_PROCS" || return 1
    unset WARDEN_SUPERVISOR_CGROUP_PROCS
  fi
}

start_time=
read_start_time() { # field 22 of /proc/PID/stat; the command name may hold spaces
  local stat rest
  read -r stat < "/proc/$1/stat" || return 1
  rest=${stat##*) }
  set -- $rest
  start_time=${20}
}

ended=
# ended=exit|signal from the last `jobs -l` line in file $1; empty when there is none.
read_end() {
  local line='' last=''
  ended=
  while read -r line; do last=$line; done < "$1" || true
  [ -n "$line" ] && last=$line
  [ -n "$last" ] || return 0
  set -f
  set -- $last
  set +f
  case ${3-} in
    Done | Exit) ended=exit ;;
    *) ended=signal ;;
  esac
}

supervise() {
  : > "$dir/stdout"
  : > "$dir/stderr"
  local out=$dir/stdout err=$dir/stderr
  if [ "$discard" = 1 ]; then out=/dev/null err=/dev/null; fi
  # Job control puts the job in a process group of its own, so it can be
  # signalled as a group without touching this supervisor. The CHLD trap runs
  # while bash still knows how the child ended (runs after the fork: the child
  # keeps the caller's locale).
  set -m
  trap 'LC_ALL=C; jobs -l > "$dir/child_end"' CHLD
  if [ -n "$fd3" ]; then
    "$@" < "$dir/script" > "$out" 2> "$err" 3> "$dir/$fd3" &
  else
    "$@" < "$dir/script" > "$out" 2> "$err" &
  fi
  local child=$! self=$BASHPID
  set +m
  read_start_time "$child"; local child_start=$start_time
  read_start_time "$self"
  echo "$child $child_start $self $start_time" > "$dir/pid"
  wait "$child"
  local status=$?
  if [ -e "$dir/job_end" ]; then
    read_end "$dir/job_end"
    # Nothing reported: the wrapper itself was killed (with its job) unless it exited on its own.
    if [ "$ended" = signal ] || { [ -z "$ended" ] && [ "$status" -ge 128 ]; }; then status=255; fi
  else
    read_end "$dir/child_end"
    if [ "$ended" = signal ]; then status=255; fi
  fi
  echo "$status" > "$dir/exit_status"
}

[ "${WARDEN_SUPERVISOR_LIB:-}" = 1 ] && return 0

set -u
dir=$1 discard=$2
shift 3
enter_groups || exit 1
supervise "$@" < /dev/null > /dev/null 2>&1 &
