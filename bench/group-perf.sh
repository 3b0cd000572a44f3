#!/usr/bin/env bash
# Issue 8's group benchmark (release build, local processes):
#   1. one keeper and one broker; 1,000,000 records of 100 B into a 6-partition topic
#   2. consumer-perf-test reading them: every partition assigned (no group), then as a group
#      of 1, then as a group of 3 members (each run a new group, so each starts at the
#      beginning; the group runs report rebalance.time.ms, which includes
#      group.initial.rebalance.delay.ms = 3000, and fetch rates without it)
#   3. the rebalance timing of a group of 10 consumers (tests/examples/rebalance_time.rs):
#      an 11th member joining, a member leaving, ROUNDS (default 5) times each, with Kafka's
#      default heartbeat.interval.ms (3 s) and with 500 ms
# Prints every tool's output; docs/benchmarks.md records a run. RECORDS overrides 1,000,000.
source "$(dirname "$0")/setup.sh"

step "one keeper, one broker ($(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
cluster 1 'offsets.topic.replication.factor=1\n'
"$S" topics "${C[@]}" --create --topic readable --partitions 6 >/dev/null
"$S" producer-perf-test "${C[@]}" --topic readable --num-records "$RECORDS" --record-size 100 --throughput -1 \
  --producer-props acks=1 | tail -1

step "consumer-perf-test: every partition assigned, no group"
"$S" consumer-perf-test "${C[@]}" --topic readable --messages "$RECORDS"

step "consumer-perf-test: a group of one member"
"$S" consumer-perf-test "${C[@]}" --topic readable --messages "$RECORDS" --group perf-1

step "consumer-perf-test: a group of three members"
"$S" consumer-perf-test "${C[@]}" --topic readable --messages "$RECORDS" --group perf-3 --threads 3

step "rebalance time of a group of 10 consumers (own broker)"
cargo build --release --locked -p sluice-tests --example rebalance_time 2>&1 | tail -1
target/release/examples/rebalance_time
step "the same with heartbeat.interval.ms=500"
HEARTBEAT_MS=500 target/release/examples/rebalance_time
