#!/usr/bin/env bash
# Issue 21's benchmark: what 1,000 ACLs cost the produce path. One keeper, one broker
# (release build, local processes); a producer whose certificate is not a super user
# (User:producer, granted --producer --idempotent on its topic) runs producer-perf-test,
# 1,000,000 x 100 B, acks=1, alternately with only its own grants in place and with 1,000
# more ACLs (others' literal and prefixed topic ACLs and group ACLs), twice each.
# The check alone: `cargo bench -p sluice-broker-core --bench acl`.
source "$(dirname "$0")/setup.sh"

step "one keeper, one broker ($(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
cluster 1
"$S" certs issue --dir "$DIR/certs" --client producer >/dev/null
tls producer >"$DIR/producer.properties"
P=(--bootstrap-server "$BOOTSTRAP" --command-config "$DIR/producer.properties")
"$S" topics "${C[@]}" --create --topic acl-bench --partitions 6 >/dev/null
"$S" acls "${C[@]}" --add --allow-principal User:producer --producer --idempotent --topic acl-bench >/dev/null

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

run() {
  sync  # each run starts from a quiet page cache
  step "producer-perf-test as User:producer: $RECORDS x 100 B, acks=1, with $(count) ACLs in place"
  "$S" producer-perf-test "${P[@]}" --topic acl-bench --num-records "$RECORDS" --record-size 100 --throughput -1 \
    --producer-props acks=1
}

for round in 1 2; do
  run
  step "adding 1,000 ACLs"
  add_many
  run
  step "removing them"
  remove_many
done
