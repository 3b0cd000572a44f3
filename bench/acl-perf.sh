#!/usr/bin/env bash
# Issue 21's benchmark: what 1,000 ACLs cost the produce path. One keeper, one broker
# (release build, local processes); a producer whose certificate is not a super user
# (User:producer, granted --producer --idempotent on the prefix acl-bench-) runs
# producer-perf-test, 1,000,000 x 100 B, acks=1, each run into a fresh topic, with only its
# own grants in place (A) and with 1,000 more ACLs (B: others' literal and prefixed topic
# ACLs and group ACLs), in the order A B B A A B B A (so neither condition always runs
# first on a fresh disk); prints each condition's mean at the end.
# The check alone: `cargo bench -p sluice-broker-core --bench acl`.
source "$(dirname "$0")/setup.sh"

step "one keeper, one broker ($(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
cluster 1
"$S" certs issue --dir "$DIR/certs" --client producer >/dev/null
tls producer >"$DIR/producer.properties"
P=(--bootstrap-server "$BOOTSTRAP" --command-config "$DIR/producer.properties")
"$S" acls "${C[@]}" --add --allow-principal User:producer --producer --idempotent --topic acl-bench- \
  --resource-pattern-type PREFIXED >/dev/null

# The 1,000 others' ACLs: 500 literal topics, 300 prefixed topics, 200 groups.
literal=(); prefixed=(); groups=()
for i in $(seq 500); do literal+=(--topic "other-$i"); done
for i in $(seq 300); do prefixed+=(--topic "pre-$i-"); done
for i in $(seq 200); do groups+=(--group "group-$i"); done
add_many() {
  "$S" acls "${C[@]}" --add --allow-principal User:someone-else --operation Read "${literal[@]}" >/dev/null
  "$S" acls "${C[@]}" --add --allow-principal User:someone-else --operation Write --resource-pattern-type PREFIXED "${prefixed[@]}" >/dev/null
  "$S" acls "${C[@]}" --add --allow-principal User:someone-else --operation Read "${groups[@]}" >/dev/null
}
remove_many() {
  "$S" acls "${C[@]}" --remove --force "${literal[@]}" >/dev/null
  "$S" acls "${C[@]}" --remove --force --resource-pattern-type PREFIXED "${prefixed[@]}" >/dev/null
  "$S" acls "${C[@]}" --remove --force "${groups[@]}" >/dev/null
}
count() { "$S" acls "${C[@]}" --list | grep -c 'principal=' || true; }

RUN=0
declare -A RATES=([A]="" [B]="")
run() {
  RUN=$((RUN + 1))
  local topic="acl-bench-$RUN" out rate
  "$S" topics "${C[@]}" --create --topic "$topic" --partitions 6 >/dev/null
  sync  # each run starts from a quiet page cache
  step "run $RUN ($1) producer-perf-test as User:producer: $RECORDS x 100 B, acks=1, with $(count) ACLs in place"
  out=$("$S" producer-perf-test "${P[@]}" --topic "$topic" --num-records "$RECORDS" --record-size 100 --throughput -1 \
    --producer-props acks=1 | tail -1)
  echo "$out"
  rate=$(echo "$out" | grep -oP '[0-9.]+(?= records/sec)')
  RATES[$1]="${RATES[$1]} $rate"
}

for condition in A B B A A B B A; do
  if [ "$condition" = B ]; then add_many; fi
  run "$condition"
  if [ "$condition" = B ]; then remove_many; fi
done

step "mean records/s"
for c in A B; do
  echo "$c:${RATES[$c]} -> $(echo "${RATES[$c]}" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.0f", s / NF }')"
done
