#!/usr/bin/env bash
# Runs a command (the Kafka broker) and stops it when this script's parent goes away.
#
# The parent holds our stdin open through a pipe. When the parent exits for any reason, kill -9
# included, the pipe closes, `cat` sees EOF, and the broker gets SIGTERM (a controlled shutdown).
# SIGTERM/SIGINT sent to this script are forwarded the same way. No orphaned JVM either way.
set -u
exec 3<&0
"$@" </dev/null &
child=$!
cat <&3 >/dev/null &
watcher=$!
exec 3<&-
trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
wait -n "$child" "$watcher"
kill -TERM "$child" 2>/dev/null
kill "$watcher" 2>/dev/null
# A controlled shutdown normally takes a few seconds; do not wait forever.
for _ in $(seq 1 300); do
  kill -0 "$child" 2>/dev/null || break
  sleep 0.1
done
kill -KILL "$child" 2>/dev/null
wait "$child"
status=$?
# 143 = terminated by our own SIGTERM: that is a clean stop.
if [ "$status" -eq 143 ]; then exit 0; fi
exit "$status"
