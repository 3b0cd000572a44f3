#!/usr/bin/env bash
# The README's first command: a local Sluice cluster, producing and consuming.
#
# Builds `sluice` (release), makes a cluster CA with node and client certificates, starts one
# keeper and three brokers on free ports under a temporary directory, creates a topic,
# produces and consumes through it (console tools, a consumer group and the perf tests), and
# stops everything (also on Ctrl-C or an error). Set SLUICE_DIR to keep the files somewhere,
# RECORDS to change how many records the perf tests move (default 1,000,000). Without
# SLUICE_DIR the temporary directory is removed at the end.
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
source scripts/cluster-lib.sh
if [ -z "${SLUICE_DIR:-}" ]; then
  # A throwaway directory goes with the cluster (set SLUICE_DIR to keep the files).
  trap 'cleanup; rm -rf "$DIR"' EXIT INT TERM
fi

step "certificates, one keeper, three brokers"
cluster 3
"$S" keeper-shell "$KEEPER/sluice" --command-config "$DIR/client.properties" ls /brokers/ids

step "topic demo: 6 partitions, each replicated on all three brokers (acks=all needs 2 in sync)"
"$S" topics "${C[@]}" --create --topic demo --partitions 6 --replication-factor 3 --config min.insync.replicas=2
"$S" topics "${C[@]}" --describe --topic demo

step "console producer and consumer"
printf 'user-1:signed up\nuser-2:signed up\nuser-1:paid\n' |
  "$S" console-producer "${C[@]}" --topic demo --property parse.key=true --property key.separator=:
"$S" console-consumer "${C[@]}" --topic demo --from-beginning --max-messages 3 \
  --property print.key=true --property print.partition=true --property print.offset=true

step "a consumer group: a console consumer in group demo-readers reads 2 records, commits, leaves"
"$S" console-consumer "${C[@]}" --topic demo --group demo-readers --from-beginning --max-messages 2 \
  --property print.key=true
"$S" consumer-groups "${C[@]}" --describe --group demo-readers

step "producer-perf-test: $RECORDS records of 100 bytes, acks=all (idempotent)"
"$S" producer-perf-test "${C[@]}" --topic demo --num-records "$RECORDS" --record-size 100 --throughput -1 \
  --producer-props acks=all

step "consumer-perf-test: the same records back"
"$S" consumer-perf-test "${C[@]}" --topic demo --messages "$RECORDS"

step "done: stopping the cluster${SLUICE_DIR:+ (files stay in $DIR)}"
