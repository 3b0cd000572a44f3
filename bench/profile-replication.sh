#!/usr/bin/env bash
# Where the time goes when RF=3 `acks=all` replicates 1 KiB records (issue 24): one keeper
# and three brokers as in bench/replication-perf.sh, the same producer, and `perf record -a`
# (system-wide, no call graphs: the release build has no frame pointers) while it runs.
# Prints the top symbols by process and by shared object. RECORDS overrides 1,000,000;
# SIZE the record size (1024).
source "$(dirname "$0")/setup.sh"
# setup.sh sets RECORDS (1,000,000 unless given).
SIZE=${SIZE:-1024}
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }

step "one keeper, three brokers ($(nproc) cores)"
cluster 3 'zookeeper.session.timeout.ms=6000\n'
"$S" topics "${C[@]}" --create --topic prof3 --partitions 6 --replication-factor 3 \
  --config min.insync.replicas=2 >/dev/null
sync
step "throughput under perf: $RECORDS x $SIZE B, RF=3, acks=all"
perf record -a -o "$DIR/perf.data" -F 999 -- "$S" producer-perf-test "${C[@]}" --topic prof3 \
  --num-records "$RECORDS" --record-size "$SIZE" --throughput -1 --producer-props acks=all 2>&1 | tail -3
step "by process"
perf report -i "$DIR/perf.data" --sort comm --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
step "by shared object"
perf report -i "$DIR/perf.data" --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -12
step "top symbols"
perf report -i "$DIR/perf.data" --sort comm,sym --stdio 2>/dev/null | grep -v '^#' | grep -v '^$' | head -45
