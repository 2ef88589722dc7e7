#!/bin/bash
# Pins the processes of a running gateway benchmark: the dwell gateway to core 0, everything else
# of the benchmark (broker, load clients, run.mjs) to core 1. Run it beside
#   npm run bench:gateway -- --quick --only uws --skip-idle --no-multi
# and stop it afterwards; it polls for new processes every 200 ms (threads they start later
# inherit the affinity).
declare -A done
while true; do
  for pid in $(pgrep -f "dwell.js gateway"); do
    [ -n "${done[$pid]}" ] && continue
    taskset -a -p -c 0 "$pid" >/dev/null 2>&1 && done[$pid]=1
  done
  for pid in $(pgrep -f "load-client.mjs|kafka.Kafka|bench/gateway/run.mjs"); do
    [ -n "${done[$pid]}" ] && continue
    taskset -a -p -c 1 "$pid" >/dev/null 2>&1 && done[$pid]=1
  done
  sleep 0.2
done
