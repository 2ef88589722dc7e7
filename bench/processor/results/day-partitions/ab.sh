#!/bin/bash
# Alternating billing-only runs: old (month partitions) and new (day partitions).
for pair in 1 2; do
  for side in old new; do
    dir=/tmp/old; [ $side = new ] && dir=/work/main
    echo "== $side pair $pair $(date -u +%H:%M:%S)"
    (cd $dir && flock /tmp/dwell-bench.lock node bench/processor/run.mjs --events 2000 --billing-only 2>&1 | grep -E "billing|inserted" )
  done
done
