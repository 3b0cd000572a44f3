# Shared by scripts/local-cluster.sh and bench/*.sh: start a keeper and brokers as local
# processes under $DIR, on free ports, and stop them on exit. Source it after setting
# S (the sluice binary) and DIR (a directory for files and logs).

# Process ids go to a file: `start` runs inside $(...), a subshell, so a shell array set
# there would never reach `cleanup`.
# Brokers stop first (newest first), while the keeper still runs: a broker's SIGTERM asks
# the controller to move its leaderships away, which needs the keeper. Whatever has not
# exited 30 s after its SIGTERM is killed.
cleanup() {
  [ -f "$DIR/pids" ] || return 0
  local pids pid
  pids=$(tac "$DIR/pids")
  for pid in $pids; do
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$DIR/pids"
}
trap cleanup EXIT INT TERM

# start NAME WHAT CMD...: runs CMD in the background (stdout $DIR/NAME.out, stderr
# $DIR/NAME.log) and waits up to 30 s for its line "WHAT listening on HOST:PORT"; prints
# HOST:PORT.
start() {
  local name=$1 what=$2; shift 2
  "$@" >"$DIR/$name.out" 2>"$DIR/$name.log" &
  local pid=$! addr
  echo "$pid" >>"$DIR/pids"
  for _ in $(seq 300); do
    if addr=$(grep -m1 -oP "^$what listening on \K.*" "$DIR/$name.out" 2>/dev/null); then
      echo "$addr"; return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "$name did not start; its log ($DIR/$name.log):" >&2
  tail -20 "$DIR/$name.log" >&2
  return 1
}

# tls NAME: the three tls.* lines for certificate NAME.
tls() { printf 'tls.ca.file=%s\ntls.cert.file=%s\ntls.key.file=%s\n' "$DIR/certs/ca.pem" "$DIR/certs/$1.pem" "$DIR/certs/$1.key"; }

# cluster N [EXTRA]: certificates, one keeper and N brokers (EXTRA: more server.properties
# lines; LISTENERS, if set, replaces `quic://127.0.0.1:0` as the brokers' listeners). Sets
# KEEPER (host:port), BOOTSTRAP (host:port,...) and C (the client flags).
cluster() {
  local n=$1 extra=${2:-}
  local nodes=(--node keeper-1)
  for id in $(seq "$n"); do nodes+=(--node "broker-$id"); done
  "$S" certs init --dir "$DIR/certs" "${nodes[@]}" --client cli --force >/dev/null
  { printf 'tickTime=500\ndataDir=%s\nclientPort=0\nclientPortAddress=127.0.0.1\n' "$DIR/keeper-data"; tls keeper-1; } \
    >"$DIR/keeper.properties"
  KEEPER=$(start keeper keeper "$S" keeper start "$DIR/keeper.properties")
  echo "keeper at $KEEPER"
  BOOTSTRAP=""
  # Authorization is on: the brokers and the client `cli` are super users.
  local supers="User:cli"
  for id in $(seq "$n"); do supers="$supers;User:broker-$id"; done
  for id in $(seq "$n"); do
    { printf 'broker.id=%s\nlisteners=%s\nlog.dirs=%s\nzookeeper.connect=%s/sluice\nsuper.users=%s\n%b' \
        "$id" "${LISTENERS:-quic://127.0.0.1:0}" "$DIR/broker-$id-logs" "$KEEPER" "$supers" "$extra"; tls "broker-$id"; } \
      >"$DIR/broker-$id.properties"
    local addr
    addr=$(start "broker-$id" broker "$S" broker start "$DIR/broker-$id.properties")
    echo "broker $id at $addr"
    BOOTSTRAP=${BOOTSTRAP:+$BOOTSTRAP,}$addr
  done
  tls cli >"$DIR/client.properties"
  C=(--bootstrap-server "$BOOTSTRAP" --command-config "$DIR/client.properties")
}
