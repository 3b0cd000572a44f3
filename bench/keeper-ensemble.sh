#!/usr/bin/env bash
# A 3-server keeper ensemble against a 3-server Apache ZooKeeper 3.8 ensemble, on loopback,
# in the same run: writes (set), reads (get) and creates at 8 and 64 sessions spread over
# the servers — through the keeper's own QUIC protocol, through its ZooKeeper door (plain
# TCP, the same `zookeeper-client` harness as ZooKeeper's) and against ZooKeeper — then the
# failover time of the keeper and of ZooKeeper (SIGKILL the leader under a write load; the
# longest time without any acknowledged write).
#
#   bash bench/keeper-ensemble.sh            # needs: cargo build --release -p sluice-bin,
#                                            # Debian's zookeeper package (java)
# Env: SECONDS_PER_RUN (3), OUTSTANDING (1), WARMUP_SECONDS (5: each system's unmeasured
# warm-up, per op; 0 skips it), WORK (a temp dir), KEEP=1 keeps it, ONLY=failover skips the
# throughput runs.
set -euo pipefail
cd "$(dirname "$0")/.."
S=${SLUICE:-$PWD/target/release/sluice}
ZK_CP=/etc/zookeeper/conf:/usr/share/java/zookeeper.jar
SECS=${SECONDS_PER_RUN:-3}
OUT=${OUTSTANDING:-1}
WARM=${WARMUP_SECONDS:-5}
WORK=${WORK:-$(mktemp -d /tmp/keeper-ensemble-bench.XXXXXX)}
[ -x "$S" ] || { echo "build first: cargo build --release -p sluice-bin" >&2; exit 1; }
[ -f /usr/share/java/zookeeper.jar ] || { echo "install ZooKeeper first: apt-get install -y zookeeper" >&2; exit 1; }

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

port() { python3 -c 'import socket,sys
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
s = socket.socket(socket.AF_INET, kind); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' "$1"; }

echo "== $(date -u +%FT%TZ) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); work dir $WORK"
"$S" certs init --dir "$WORK/certs" --node keeper-1 --node keeper-2 --node keeper-3 --client bench >/dev/null 2>&1
printf 'tls.ca.file=%s/certs/ca.pem\ntls.cert.file=%s/certs/bench.pem\ntls.key.file=%s/certs/bench.key\n' \
  "$WORK" "$WORK" "$WORK" > "$WORK/client.properties"

# --- the keeper ensemble
declare -a KCLIENT KDOOR KPID
servers=""
for i in 1 2 3; do servers+="server.$i=127.0.0.1:$(port udp)"$'\n'; done
for i in 1 2 3; do
  d="$WORK/keeper-$i"; mkdir -p "$d/data"; echo "$i" > "$d/data/myid"
  KCLIENT[$i]=$(port udp)
  KDOOR[$i]=$(port tcp)
  cat > "$d/keeper.properties" <<EOF
tickTime=2000
dataDir=$d/data
clientPort=${KCLIENT[$i]}
clientPortAddress=127.0.0.1
plaintextClientPort=${KDOOR[$i]}
tls.ca.file=$WORK/certs/ca.pem
tls.cert.file=$WORK/certs/keeper-$i.pem
tls.key.file=$WORK/certs/keeper-$i.key
$servers
EOF
  "$S" keeper start "$d/keeper.properties" > "$d/out" 2> "$d/err" &
  KPID[$i]=$!; pids+=($!)
done
KCONNECT="127.0.0.1:${KCLIENT[1]},127.0.0.1:${KCLIENT[2]},127.0.0.1:${KCLIENT[3]}"
DCONNECT="127.0.0.1:${KDOOR[1]},127.0.0.1:${KDOOR[2]},127.0.0.1:${KDOOR[3]}"

# --- the ZooKeeper ensemble
declare -a ZCLIENT ZPID
zservers=""
for i in 1 2 3; do zservers+="server.$i=127.0.0.1:$(port tcp):$(port tcp)"$'\n'; done
for i in 1 2 3; do
  d="$WORK/zk-$i"; mkdir -p "$d/data"; echo "$i" > "$d/data/myid"
  ZCLIENT[$i]=$(port tcp)
  cat > "$d/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$d/data
clientPort=${ZCLIENT[$i]}
clientPortAddress=127.0.0.1
maxClientCnxns=500
admin.enableServer=false
4lw.commands.whitelist=*
$zservers
EOF
  (cd "$d" && exec java -Dzookeeper.log.dir="$d" -cp "$ZK_CP" org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg) \
    > "$d/out" 2>&1 &
  ZPID[$i]=$!; pids+=($!)
done
ZCONNECT="127.0.0.1:${ZCLIENT[1]},127.0.0.1:${ZCLIENT[2]},127.0.0.1:${ZCLIENT[3]}"

keeper_leader() {
  for i in 1 2 3; do
    if "$S" keeper status "127.0.0.1:${KCLIENT[$i]}" --command-config "$WORK/client.properties" 2>/dev/null \
      | grep -q '^Mode: leader'; then echo "$i"; return; fi
  done
}
zk_leader() {
  for i in 1 2 3; do
    if python3 - "${ZCLIENT[$i]}" <<'EOF' 2>/dev/null | grep -q 'Mode: leader'; then echo "$i"; return; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2); s.sendall(b"srvr")
print(s.makefile().read())
EOF
  done
}
wait_leader() {
  local f=$1 l=""
  for _ in $(seq 1 150); do l=$($f); [ -n "$l" ] && { echo "$l"; return; }; sleep 0.2; done
  echo "no leader" >&2; exit 1
}
KL=$(wait_leader keeper_leader); ZL=$(wait_leader zk_leader)
echo "keeper leader: server $KL; ZooKeeper leader: server $ZL"

KPERF=("$S" keeper-perf-test --connect "$KCONNECT" --command-config "$WORK/client.properties")
ZPERF=("$S" keeper-perf-test --zookeeper "$ZCONNECT")
DPERF=("$S" keeper-perf-test --zookeeper "$DCONNECT")
# One system's failed run is reported (its error, from the tool's stderr) and the rest go on.
measure() {
  local name=$1; shift
  if ! "$@" --seconds "$SECS" --clients 8,64 --ops "$ops" --outstanding "$OUT" 2>"$WORK/err-$name" \
      | sed "s/^/$(printf '%-9s' "$name") /"; then
    echo "$name $ops FAILED: $(grep -v '^\s*$' "$WORK/err-$name" | tail -3 | tr '\n' ' ')"
  fi
}
# Warm-up, not measured: ZooKeeper runs on a JVM, and its first seconds of load run
# interpreted code. Measured cold (before this warm-up existed) its writes were a third of
# what the same servers do a minute later, which made every ratio to it two to three times
# too kind (docs/benchmarks.md, 2026-12-07 session 20). Every system gets the same warm-up.
warm() {
  local name=$1; shift
  "$@" --seconds "$WARM" --clients 64 --ops set,create,get --outstanding "$OUT" >/dev/null 2>&1 \
    || echo "warm-up of $name failed (the measured runs will say why)"
}
if [ "${ONLY:-}" != failover ] && [ "$WARM" != 0 ]; then
  echo "warming up each system: ${WARM} s of set, create and get at 64 sessions (not measured)"
  warm keeper "${KPERF[@]}"; warm door "${DPERF[@]}"; warm zookeeper "${ZPERF[@]}"
fi
for ops in set,get create; do
  [ "${ONLY:-}" = failover ] && break
  measure keeper "${KPERF[@]}"
  measure door "${DPERF[@]}"
  measure zookeeper "${ZPERF[@]}"
done

# --- failover: 8 sessions writing for 8 s; the leader is SIGKILLed 3 s in.
failover() {
  local name=$1 leader=$2 pid=$3; shift 3
  "$@" --seconds 8 --clients 8 --ops set --keep-going > "$WORK/failover-$name" 2>/dev/null &
  local perf=$!
  sleep 4  # 1 s to open sessions and set up, then 3 s of writes
  kill -9 "$pid"
  echo "$name: SIGKILL leader (server $leader) at $(date -u +%T.%N | cut -c1-12)"
  wait "$perf" || true
  sed "s/^/$name /" "$WORK/failover-$name"
}
failover keeper "$KL" "${KPID[$KL]}" "${KPERF[@]}"
failover zookeeper "$ZL" "${ZPID[$ZL]}" "${ZPERF[@]}"
echo "== done $(date -u +%T)"
