#!/usr/bin/env bash
# Issue 6's broker benchmark: one keeper and one broker (release build, local processes),
# then Kafka's perf tools:
#   0. producer-perf-test at 10,000 records/s (100 B, acks=1, linger.ms=0): produce latency,
#      first, after `sync` (later runs leave gigabytes of dirty pages whose writeback stalls
#      appends: measured separately below)
#   1. producer-perf-test, 1,000,000 records of 100 B, acks=1, unthrottled
#   2. producer-perf-test, 1,000,000 records of 1 KiB, acks=1, unthrottled (default batch.size,
#      then the same with --threads 1, then batch.size=65536, then batch.size=524288: Kafka's own
#      benchmark tuned batch.size)
#   3. consumer-perf-test reading back each topic of 1 and 2
#   4. the latency run of 0 again, while the gigabytes above are written back
#   5. dd's rate of writing 1 GiB of new file data: the machine's ceiling
# Every producer run starts after `sync`: without it the third 1 KiB run writes behind 2 GiB of
# dirty pages and measures the virtual disk's writeback pace instead of the broker.
# Prints every tool's output; docs/benchmarks.md records a run. RECORDS overrides 1,000,000.
source "$(dirname "$0")/setup.sh"

step "one keeper, one broker ($(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
cluster 1
for t in small large large1t large64 large512 paced; do "$S" topics "${C[@]}" --create --topic "$t" --partitions 6 >/dev/null; done

sync  # start from a quiet page cache: the latency run must not wait on earlier writeback
step "producer-perf-test: 100,000 x 100 B at 10,000 records/s, acks=1, linger.ms=0 (latency)"
"$S" producer-perf-test "${C[@]}" --topic paced --num-records 100000 --record-size 100 --throughput 10000 \
  --producer-props acks=1 linger.ms=0

sync  # each throughput run starts from a quiet page cache (see the latency run)
step "producer-perf-test: $RECORDS x 100 B, acks=1"
"$S" producer-perf-test "${C[@]}" --topic small --num-records "$RECORDS" --record-size 100 --throughput -1 \
  --producer-props acks=1

sync  # each throughput run starts from a quiet page cache (see the latency run)
step "producer-perf-test: $RECORDS x 1 KiB, acks=1"
"$S" producer-perf-test "${C[@]}" --topic large --num-records "$RECORDS" --record-size 1024 --throughput -1 \
  --producer-props acks=1

sync  # each throughput run starts from a quiet page cache (see the latency run)
step "producer-perf-test: $RECORDS x 1 KiB, acks=1, --threads 1 (the send loop on the producer's one runtime thread)"
"$S" producer-perf-test "${C[@]}" --topic large1t --num-records "$RECORDS" --record-size 1024 --throughput -1 \
  --threads 1 --producer-props acks=1

sync  # each throughput run starts from a quiet page cache (see the latency run)
step "producer-perf-test: $RECORDS x 1 KiB, acks=1, batch.size=65536"
"$S" producer-perf-test "${C[@]}" --topic large64 --num-records "$RECORDS" --record-size 1024 --throughput -1 \
  --producer-props acks=1 batch.size=65536

sync  # each throughput run starts from a quiet page cache (see the latency run)
step "producer-perf-test: $RECORDS x 1 KiB, acks=1, batch.size=524288"
"$S" producer-perf-test "${C[@]}" --topic large512 --num-records "$RECORDS" --record-size 1024 --throughput -1 \
  --producer-props acks=1 batch.size=524288


step "consumer-perf-test: the 100 B records"
"$S" consumer-perf-test "${C[@]}" --topic small --messages "$RECORDS"

step "consumer-perf-test: the 1 KiB records"
"$S" consumer-perf-test "${C[@]}" --topic large --messages "$RECORDS"

step "producer-perf-test: the latency run again, now with the runs above still being written back"
"$S" producer-perf-test "${C[@]}" --topic paced --num-records 100000 --record-size 100 --throughput 10000 \
  --producer-props acks=1 linger.ms=0

step "page-cache write ceiling of this machine: dd of 1 GiB of new file data"
dd if=/dev/zero of="$DIR/dd.test" bs=256k count=4096 2>&1 | tail -1
rm -f "$DIR/dd.test"
