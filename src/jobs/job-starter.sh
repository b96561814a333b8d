#!/bin/bash
# Starts job supervisors without starting a process for each: one of these runs
# beside a spawner (spawner-process.js) and forks a supervisor for every job it is
# handed. Started the usual way, a job's supervisor costs the spawner a fork of a
# Node process and then a bash start, ~7 ms before the job's runc is even forked on
# the VMs we measure on; a fork of this small shell is ~2 ms and no exec.
#
#   job-starter.sh    (orders on stdin, answers on stdout, until stdin closes)
#
# An order is a line with its length in bytes, then that many bytes: fields each
# ended by \001, ID CWD N ENV_1..ENV_N M ARG_1..ARG_M, where ENV_i is NAME=VALUE
# (the supervisor's whole environment; NAME a shell identifier) and the ARGs are a
# command line of job-supervisor.sh: its path (the one this script sourced, or the
# order is refused with 127), JOB_DIR DISCARD -- ARGV... (One read for the lot: a
# shell reads a pipe byte by byte up to a delimiter, a syscall each.)
# For each order a subshell takes that environment and does what the script would
# do, in the same order: it joins the job's cgroups, leaves the daemon's, answers
# "ID STATUS PID" (STATUS 0, or 1 as the script exits 1; PID its own) and becomes the
# supervisor. Supervisors are this shell's children until it ends (its stdin
# closed: the spawner is gone); they live on, as they do after a daemon restart.
set -u
# Bytes, not characters: read -N counts in the locale's characters.
LC_ALL=C
supervisor=${BASH_SOURCE[0]%/*}/job-supervisor.sh
WARDEN_SUPERVISOR_LIB=1
. "$supervisor" || exit 1
unset WARDEN_SUPERVISOR_LIB

while IFS= read -r len; do
  [[ $len =~ ^[0-9]+$ ]] || exit 1
  IFS= read -r -N "$len" order || exit 0
  set -f
  IFS=$'\001'
  f=($order)
  IFS=$' \t\n'
  set +f
  id=${f[0]-} cwd=${f[1]-} n=${f[2]-}
  [[ $n =~ ^[0-9]+$ ]] || n=0
  envs=("${f[@]:3:n}")
  m=${f[3 + n]-}
  [[ $m =~ ^[0-9]+$ ]] || m=0
  args=("${f[@]:4 + n:m}")
  if [ "${args[0]-}" != "$supervisor" ] || ((m < 4 || ${#args[@]} != m)); then
    echo "$id 127 0"
    continue
  fi
  (
    cd -- "$cwd" 2>/dev/null || { echo "$id 1 $BASHPID"; exit 1; }
    # The order's environment only, as a supervisor started with it has: what this
    # shell was started with goes (PATH), and so does what cd just set (OLDPWD).
    unset PATH OLDPWD
    for e in "${envs[@]}"; do export "$e"; done
    set -- "${args[@]:1}"
    unset envs args e n m f order len
    dir=$1 discard=$2
    shift 3
    # An answer nobody reads any more (the spawner died meanwhile) must not end
    # the supervisor with SIGPIPE: the job runs, as one whose start script had
    # already forked it does. The job itself gets SIGPIPE at its default again.
    trap '' PIPE
    if ! enter_groups; then
      echo "$id 1 $BASHPID"
      exit 1
    fi
    echo "$id 0 $BASHPID"
    trap - PIPE
    unset id cwd
    exec < /dev/null > /dev/null 2>&1
    supervise "$@"
  ) &
done
