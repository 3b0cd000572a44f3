#!/usr/bin/env bash
# The README's first command: a local Sluice cluster, producing and consuming.
#
# Builds `sluice` (release), makes a cluster CA with node and client certificates, starts one
# keeper and three brokers on free ports under a temporary directory, creates a topic,
# produces and consumes through it (console tools and the perf tests), shows the topic, and
# stops everything (also on Ctrl-C or an error). Set SLUICE_DIR to keep the files somewhere,
# RECORDS to change how many records the perf tests move (default 1,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-1000000}
step() { printf '\n=== %s\n' "$*"; }

step "building sluice (release; the first build takes a few minutes)"
cargo build --release --locked -p sluice-bin
S=$PWD/target/release/sluice

DIR=${SLUICE_DIR:-$(mktemp -d -t sluice-local.XXXXXX)}
mkdir -p "$DIR"
echo "files in $DIR"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# Starts "$@" in the background, logging to $DIR/$name.log, and waits (up to 30 s) for the
# line "$what listening on HOST:PORT"; prints HOST:PORT.
start() {
  local name=$1 what=$2; shift 2
  "$@" >"$DIR/$name.out" 2>"$DIR/$name.log" &
  PIDS+=($!)
  for _ in $(seq 300); do
    if addr=$(grep -m1 -oP "^$what listening on \K.*" "$DIR/$name.out" 2>/dev/null); then
      echo "$addr"; return 0
    fi
    if ! kill -0 "${PIDS[-1]}" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "$name did not start; its log ($DIR/$name.log):" >&2
  tail -20 "$DIR/$name.log" >&2
  return 1
}

step "certificates (a CA, keeper-1, broker-1..3, client cli)"
"$S" certs init --dir "$DIR/certs" --node keeper-1 --node broker-1 --node broker-2 --node broker-3 --client cli --force >/dev/null
tls() { printf 'tls.ca.file=%s\ntls.cert.file=%s\ntls.key.file=%s\n' "$DIR/certs/ca.pem" "$DIR/certs/$1.pem" "$DIR/certs/$1.key"; }

step "keeper"
{ printf 'tickTime=500\ndataDir=%s\nclientPort=0\nclientPortAddress=127.0.0.1\n' "$DIR/keeper-data"; tls keeper-1; } >"$DIR/keeper.properties"
KEEPER=$(start keeper keeper "$S" keeper start "$DIR/keeper.properties")
echo "keeper at $KEEPER"

step "three brokers"
BOOTSTRAP=""
for id in 1 2 3; do
  { printf 'broker.id=%s\nlisteners=quic://127.0.0.1:0\nlog.dirs=%s\nzookeeper.connect=%s/sluice\n' \
      "$id" "$DIR/broker-$id-logs" "$KEEPER"; tls "broker-$id"; } >"$DIR/broker-$id.properties"
  addr=$(start "broker-$id" broker "$S" broker start "$DIR/broker-$id.properties")
  echo "broker $id at $addr"
  BOOTSTRAP=${BOOTSTRAP:+$BOOTSTRAP,}$addr
done
tls cli >"$DIR/client.properties"
C=(--bootstrap-server "$BOOTSTRAP" --command-config "$DIR/client.properties")
"$S" keeper-shell "$KEEPER/sluice" --command-config "$DIR/client.properties" ls /brokers/ids

step "topic demo: 6 partitions"
"$S" topics "${C[@]}" --create --topic demo --partitions 6 --replication-factor 1
"$S" topics "${C[@]}" --describe --topic demo

step "console producer and consumer"
printf 'user-1:signed up\nuser-2:signed up\nuser-1:paid\n' |
  "$S" console-producer "${C[@]}" --topic demo --property parse.key=true --property key.separator=:
"$S" console-consumer "${C[@]}" --topic demo --from-beginning --max-messages 3 \
  --property print.key=true --property print.partition=true --property print.offset=true

step "producer-perf-test: $RECORDS records of 100 bytes, acks=1"
"$S" producer-perf-test "${C[@]}" --topic demo --num-records "$RECORDS" --record-size 100 --throughput -1 \
  --producer-props acks=1

step "consumer-perf-test: the same records back"
"$S" consumer-perf-test "${C[@]}" --topic demo --messages "$RECORDS"

step "done: stopping the cluster (files stay in $DIR)"
