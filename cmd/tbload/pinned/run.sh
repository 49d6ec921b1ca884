#!/usr/bin/env bash
# Pinned benchmark runs: a server on core 0, the load tool on core 1.
#
#   run.sh [-baseline] [-n N] BIN [server flags] -- client args
#
# Stops an earlier server of this script, waits for a quiet machine, starts
# `BIN server` (or `BIN baseline-server` with -baseline) on 127.0.0.1:18081
# pinned to core 0, then runs `BIN <client args> -addr 127.0.0.1:18081`
# pinned to core 1, N times (default 1) against that one server. With
# PROF=name set, run i also writes the server's CPU profile of its measured
# window to /tmp/name.i.prof. BIN is a tbload binary:
#   go build -o /tmp/tbload ./cmd/tbload
set -u
mode=server n=1
while [ $# -gt 0 ]; do
  case "$1" in
    -baseline) mode=baseline-server; shift ;;
    -n) n=$2; shift 2 ;;
    *) break ;;
  esac
done
bin=$1; shift
sflags=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do sflags+=("$1"); shift; done
shift
addr=127.0.0.1:18081
pkill -f -- "-addr $addr" 2>/dev/null; sleep 0.5
"$(dirname "$0")/quiet.sh"
ulimit -n 20000
taskset -c 0 "$bin" "$mode" -addr "$addr" "${sflags[@]}" >/tmp/tbload-server.log 2>&1 &
spid=$!
sleep 1
for i in $(seq 1 "$n"); do
  prof=()
  if [ -n "${PROF:-}" ]; then prof=(-server-cpuprofile "/tmp/$PROF.$i.prof"); fi
  taskset -c 1 "$bin" "$@" -addr "$addr" "${prof[@]}"
done
kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
exit 0
