#!/usr/bin/env bash
# The README's first command: a local Sluice cluster, producing and consuming.
#
# Builds `sluice` (release), then `sluice dev up`: a cluster CA with node and client
# certificates, three keepers (an ensemble) and three brokers on free ports under a
# temporary directory. Creates a topic, produces and consumes through it (console tools, a
# consumer group and the perf tests), and stops everything with `sluice dev down` (also on
# Ctrl-C or an error). Set SLUICE_DIR to keep the files somewhere (the cluster is stopped
# but kept: `sluice dev up --dir $SLUICE_DIR` starts it again), RECORDS to change how many
# records the perf tests move (default 1,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-1000000}
step() { printf '\n=== %s\n' "$*"; }

step "building sluice (release; the first build takes a few minutes)"
cargo build --release --locked -p sluice-bin
S=$PWD/target/release/sluice

DIR=${SLUICE_DIR:-$(mktemp -d -t sluice-local.XXXXXX)/cluster}
if [ -z "${SLUICE_DIR:-}" ]; then
  # A throwaway directory goes with the cluster (set SLUICE_DIR to keep the files).
  trap '"$S" dev down --dir "$DIR" --purge >/dev/null 2>&1 || true; rm -rf "$(dirname "$DIR")"' EXIT INT TERM
else
  trap '"$S" dev down --dir "$DIR" >/dev/null 2>&1 || true' EXIT INT TERM
fi

step "sluice dev up: certificates, three keepers, three brokers"
"$S" dev up --dir "$DIR"
# The tools read SLUICE_BOOTSTRAP_SERVER and SLUICE_TLS_* from here.
source "$DIR/env.sh"

step "topic demo: 6 partitions, each replicated on all three brokers (acks=all needs 2 in sync)"
"$S" topics --create --topic demo --partitions 6 --replication-factor 3 --config min.insync.replicas=2
"$S" topics --describe --topic demo

step "console producer and consumer"
printf 'user-1:signed up\nuser-2:signed up\nuser-1:paid\n' |
  "$S" console-producer --topic demo --property parse.key=true --property key.separator=:
"$S" console-consumer --topic demo --from-beginning --max-messages 3 \
  --property print.key=true --property print.partition=true --property print.offset=true

step "a consumer group: a console consumer in group demo-readers reads 2 records, commits, leaves"
"$S" console-consumer --topic demo --group demo-readers --from-beginning --max-messages 2 \
  --property print.key=true
"$S" consumer-groups --describe --group demo-readers

step "producer-perf-test: $RECORDS records of 100 bytes, acks=all (idempotent)"
"$S" producer-perf-test --topic demo --num-records "$RECORDS" --record-size 100 --throughput -1 \
  --producer-props acks=all

step "consumer-perf-test: the same records back"
"$S" consumer-perf-test --topic demo --messages "$RECORDS"

step "sluice dev down: stopping the cluster${SLUICE_DIR:+ (files stay in $DIR)}"
"$S" dev down --dir "$DIR" ${SLUICE_DIR:---purge}
trap - EXIT INT TERM
[ -n "${SLUICE_DIR:-}" ] || rm -rf "$(dirname "$DIR")"
