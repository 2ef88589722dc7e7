#!/usr/bin/env bash
# Creates (or brings up to date) dwell's Kafka topics. Run once by the `kafka-init` service
# of docker-compose.yml with the tools of the apache/kafka image; safe to re-run at any time:
#
#   docker compose run --rm kafka-init
#
# For each topic:
#   1. `kafka-topics.sh --create --if-not-exists` with the partition count, replication
#      factor and configs below (an existing topic is left as it is);
#   2. `kafka-configs.sh --alter --add-config` with the same configs, so a changed value
#      (e.g. DWELL_EVENTS_RETENTION_MS) is applied to a topic that already exists.
# Partition counts of existing topics are never changed here (see docs/deployment.md:
# adding partitions moves keys to other partitions and breaks per-page-view order).
set -euo pipefail

BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka-1:9092,kafka-2:9092,kafka-3:9092}"
KAFKA_BIN="${KAFKA_BIN:-/opt/kafka/bin}"
RF="${DWELL_TOPIC_REPLICATION_FACTOR:-3}"
MIN_ISR="${DWELL_TOPIC_MIN_INSYNC_REPLICAS:-2}"
# 400 days (the dispute window) = 400 * 86,400,000 ms
EVENTS_RETENTION_MS="${DWELL_EVENTS_RETENTION_MS:-34560000000}"
REJECTED_RETENTION_MS="${DWELL_REJECTED_RETENTION_MS:-34560000000}"
# commands and replies are live traffic with deadlines: 7 days is plenty for debugging
COMMANDS_RETENTION_MS="${DWELL_COMMANDS_RETENTION_MS:-604800000}"
REPLIES_RETENTION_MS="${DWELL_REPLIES_RETENTION_MS:-604800000}"
PARTITIONS="${DWELL_TOPIC_PARTITIONS:-12}"
ATTEMPTS="${KAFKA_INIT_ATTEMPTS:-60}"

# Retries a command: right after the brokers report healthy, a topic with RF 3 can still
# be refused until all three brokers have registered with the controller quorum.
retry() {
  local n=1
  until "$@"; do
    if [ "$n" -ge "$ATTEMPTS" ]; then
      echo "kafka-init: giving up after $n attempts: $*" >&2
      return 1
    fi
    n=$((n + 1))
    sleep 2
  done
}

# ensure_topic NAME PARTITIONS CONFIG[,CONFIG...]
ensure_topic() {
  local name="$1" partitions="$2" configs="$3"
  local -a kvs=() config_args=()
  local kv
  IFS=',' read -r -a kvs <<<"$configs"
  for kv in "${kvs[@]}"; do
    config_args+=(--config "$kv")
  done
  echo "kafka-init: topic $name (partitions=$partitions, replication-factor=$RF, $configs)"
  retry "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$name" --partitions "$partitions" --replication-factor "$RF" "${config_args[@]}"
  retry "$KAFKA_BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter \
    --entity-type topics --entity-name "$name" --add-config "$configs"
}

ensure_topic "${DWELL_EVENTS_TOPIC:-dwell.events.v1}" "$PARTITIONS" \
  "cleanup.policy=delete,retention.ms=$EVENTS_RETENTION_MS,retention.bytes=-1,min.insync.replicas=$MIN_ISR"
ensure_topic "${DWELL_REJECTED_TOPIC:-dwell.rejected.v1}" "$PARTITIONS" \
  "cleanup.policy=delete,retention.ms=$REJECTED_RETENTION_MS,retention.bytes=-1,min.insync.replicas=$MIN_ISR"
ensure_topic "${DWELL_COMMANDS_TOPIC:-dwell.commands.v1}" "$PARTITIONS" \
  "cleanup.policy=delete,retention.ms=$COMMANDS_RETENTION_MS,min.insync.replicas=$MIN_ISR"
ensure_topic "${DWELL_REPLIES_TOPIC:-dwell.replies.v1}" "$PARTITIONS" \
  "cleanup.policy=delete,retention.ms=$REPLIES_RETENTION_MS,min.insync.replicas=$MIN_ISR"
ensure_topic "${DWELL_PRESENCE_TOPIC:-dwell.presence.v1}" "$PARTITIONS" \
  "cleanup.policy=compact,min.insync.replicas=$MIN_ISR"

echo "kafka-init: topics now:"
"$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --describe --topics-with-overrides
