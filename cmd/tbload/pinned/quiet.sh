#!/usr/bin/env bash
# Waits (up to 3 minutes) until both CPUs are at least 85% idle over 3 s,
# so that a pinned run does not start on a busy machine.
for _ in $(seq 1 60); do
  read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ < /proc/stat
  sleep 3
  read -r _ u2 n2 s2 i2 w2 q2 sq2 st2 _ < /proc/stat
  tot=$(( (u2+n2+s2+i2+w2+q2+sq2+st2) - (u1+n1+s1+i1+w1+q1+sq1+st1) ))
  idle=$(( (i2+w2) - (i1+w1) ))
  pct=$(( 100*idle/tot ))
  if [ "$pct" -ge 85 ]; then exit 0; fi
  echo "waiting for a quiet machine: ${pct}% idle" >&2
done
