#!/usr/bin/env bash
# Issue 7's replication benchmark: one keeper and three brokers (release build, local
# processes, zookeeper.session.timeout.ms=6000), then Kafka's perf tool in one run:
#   1. latency at 10,000 records/s (100 B, linger.ms=0): RF=1 acks=1, then RF=3 acks=all
#      (min.insync.replicas=2). The latency is producer-perf-test's, send → acknowledgement;
#      with acks=all a record is acknowledged once every in-sync replica has it, i.e. once a
#      consumer can read it (consumers read below the high watermark).
#   2. throughput: RECORDS x 100 B and RECORDS x 1 KiB, RF=1 acks=1 vs RF=3 acks=all
#   3. failover: a paced acks=all producer (1,000 records/s, 20 s) on a one-partition RF=3
#      topic while its leader is SIGKILLed; the longest send → acknowledgement latency is the
#      time from the kill to the first successful produce after it.
#   4. controlled shutdown: the same producer on a second such topic while its leader gets
#      SIGTERM: how long the broker takes to hand its leaderships over, the longest
#      send -> acknowledgement, and that no send fails (the tool exits non-zero if one does).
# Prints every tool's output; docs/benchmarks.md records a run. RECORDS overrides 1,000,000;
# ONLY=failover runs part 3 alone, ONLY=controlled part 4 alone.
source "$(dirname "$0")/setup.sh"

step "one keeper, three brokers ($(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
cluster 3 'zookeeper.session.timeout.ms=6000\n'
for t in paced1 small1 large1; do
  "$S" topics "${C[@]}" --create --topic "$t" --partitions 6 --replication-factor 1 >/dev/null
done
for t in paced3 small3 large3; do
  "$S" topics "${C[@]}" --create --topic "$t" --partitions 6 --replication-factor 3 \
    --config min.insync.replicas=2 >/dev/null
done
for t in failover controlled; do
  "$S" topics "${C[@]}" --create --topic "$t" --partitions 1 --replication-factor 3 \
    --config min.insync.replicas=2 >/dev/null
done

sync
if [ -z "${ONLY:-}" ]; then
step "latency: 100,000 x 100 B at 10,000 records/s, RF=1, acks=1, linger.ms=0"
"$S" producer-perf-test "${C[@]}" --topic paced1 --num-records 100000 --record-size 100 --throughput 10000 \
  --producer-props acks=1 linger.ms=0
step "latency: 100,000 x 100 B at 10,000 records/s, RF=3, acks=all, linger.ms=0"
"$S" producer-perf-test "${C[@]}" --topic paced3 --num-records 100000 --record-size 100 --throughput 10000 \
  --producer-props acks=all linger.ms=0

for size in 100 1024; do
  t1=small1 t3=small3
  if [ "$size" = 1024 ]; then t1=large1 t3=large3; fi
  step "throughput: $RECORDS x $size B, RF=1, acks=1"
  "$S" producer-perf-test "${C[@]}" --topic "$t1" --num-records "$RECORDS" --record-size "$size" \
    --throughput -1 --producer-props acks=1
  step "throughput: $RECORDS x $size B, RF=3, acks=all"
  "$S" producer-perf-test "${C[@]}" --topic "$t3" --num-records "$RECORDS" --record-size "$size" \
    --throughput -1 --producer-props acks=all
done
fi

# A paced acks=all producer (20,000 x 100 B at 1,000 records/s) on topic $1, whose leader gets
# signal $2 5 s in. Sets $leader and $signalled (when); returns the producer's exit status.
signal_leader_under_load() {
  local topic=$1 sig=$2 perf pid
  leader=$("$S" topics "${C[@]}" --describe --topic "$topic" | grep -oP 'Leader: \K[0-9]+')
  "$S" producer-perf-test "${C[@]}" --topic "$topic" --num-records 20000 --record-size 100 --throughput 1000 \
    --producer-props acks=all linger.ms=0 &
  perf=$!
  sleep 5
  pid=$(sed -n "$((leader + 1))p" "$DIR/pids")
  echo "SIG$sig broker $leader (pid $pid)"
  signalled=$(date -u +%s.%N)
  kill "-$sig" "$pid"
  wait "$perf"
}

if [ -z "${ONLY:-}" ] || [ "$ONLY" = failover ]; then
step "failover: 20,000 x 100 B at 1,000 records/s, RF=3, acks=all; the leader is SIGKILLed after 5 s"
signal_leader_under_load failover KILL
"$S" topics "${C[@]}" --describe --topic failover
# When the controller named the new leader (its log line), to split the figure into the
# keeper's part (kill -> new leader) and the producer's (new leader -> first ack, about the
# longest latency less the keeper's part).
state=$(grep -h 'partition state topic="failover" partition=0' "$DIR"/broker-*.log | grep -v 'epoch=0 ' \
  | grep -oP '^\S+' | sort | head -1)
if [ -n "$state" ]; then
  echo "kill -> new leader: $(python3 -c "print(f'{$(date -u -d "$state" +%s.%N) - $signalled:.2f} s')")"
fi
fi

if [ -z "${ONLY:-}" ] || [ "$ONLY" = controlled ]; then
step "controlled shutdown: 20,000 x 100 B at 1,000 records/s, RF=3, acks=all; the leader gets SIGTERM after 5 s"
if signal_leader_under_load controlled TERM; then echo "no send failed"; else echo "SENDS FAILED (above)"; fi
"$S" topics "${C[@]}" --describe --topic controlled
echo "SIGTERM at $(date -u -d "@$signalled" +%H:%M:%S.%N); the broker's log:"
grep -hE 'controlled shutdown|shutting down|broker stopped' "$DIR/broker-$leader.log" || true
fi
