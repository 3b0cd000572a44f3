#!/usr/bin/env python3
"""kazoo, ZooKeeper's Python client, against the keeper's ZooKeeper door over TLS.

Each command prints one JSON object per line ({"step": ...}); the Rust tests in
tests/tests/zookeeper_door.rs read them. A command that needs the test to act (kill a
server) prints its step and waits for a line on stdin.

  basics   --hosts H --tls DIR:NAME   reads, writes, versions, watches, a transaction, a lock
  failover --hosts H1,H2,H3 --tls ... the session, its ephemeral and watches survive the
                                      loss of the server it is connected to
"""

import argparse
import json
import sys
import threading
import time

from polling import wait_until  # this directory is on the path when run as a script


def emit(**fields):
    print(json.dumps(fields, default=str), flush=True)


def need_kazoo():
    try:
        import kazoo  # noqa: F401
    except ImportError:
        emit(step="error", error="kazoo is missing: pip install kazoo (.ci/run does)")
        sys.exit(2)


def client(args, hosts=None, timeout=10.0):
    from kazoo.client import KazooClient

    directory, name = args.tls.split(":")
    zk = KazooClient(
        hosts=hosts or args.hosts,
        timeout=timeout,
        use_ssl=True,
        verify_certs=True,
        ca=f"{directory}/ca.pem",
        certfile=f"{directory}/{name}.pem",
        keyfile=f"{directory}/{name}.key",
    )
    zk.start(timeout=30)
    return zk


def error_name(fn):
    try:
        fn()
        return None
    except Exception as e:  # the test reads the exception's class
        return type(e).__name__


def basics(args):
    from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError  # noqa: F401

    zk = client(args)
    root = "/kazoo"
    zk.ensure_path(root)

    # Create, read, versioned writes and deletes.
    path = zk.create(f"{root}/node", b"v0")
    data, stat = zk.get(path)
    emit(step="create-get", path=path, data=data.decode(), version=stat.version, length=stat.dataLength)
    zk.set(path, b"v1", version=0)
    emit(
        step="versions",
        stale_set=error_name(lambda: zk.set(path, b"x", version=0)),
        exists_again=error_name(lambda: zk.create(path, b"")),
        missing_get=error_name(lambda: zk.get(f"{root}/missing")),
        missing_exists=zk.exists(f"{root}/missing"),
        stale_delete=error_name(lambda: zk.delete(path, version=0)),
        data=zk.get(path)[0].decode(),
    )
    zk.delete(path, version=1)
    emit(step="deleted", exists=zk.exists(path) is not None)

    # Ephemeral sequential nodes, named as ZooKeeper names them.
    seq = [zk.create(f"{root}/job-", b"", ephemeral=True, sequence=True) for _ in range(3)]
    owner = zk.exists(seq[0]).ephemeralOwner
    emit(step="sequential", paths=seq, owner_is_session=owner == zk.client_id[0])

    # Watches: a DataWatch and a ChildrenWatch see every change, in order.
    watched = zk.create(f"{root}/watched", b"d0")
    data_seen, children_seen = [], []
    zk.DataWatch(watched, lambda d, s: data_seen.append(None if d is None else d.decode()))
    zk.ChildrenWatch(watched, lambda c: children_seen.append(sorted(c)))
    for i in range(1, 4):
        zk.set(watched, f"d{i}".encode())
        wait_until(lambda: len(data_seen) == i + 1, 10)
    zk.create(f"{watched}/a", b"")
    wait_until(lambda: len(children_seen) == 2, 10)
    zk.create(f"{watched}/b", b"")
    wait_until(lambda: len(children_seen) == 3, 10)
    emit(step="watches", data=data_seen, children=children_seen)

    # A transaction: all or nothing.
    t = zk.transaction()
    t.check(watched, 3)
    t.create(f"{root}/txn-a", b"a")
    t.set_data(watched, b"txn")
    ok = t.commit()
    t = zk.transaction()
    t.create(f"{root}/txn-b", b"b")
    t.delete(f"{root}/missing")
    t.create(f"{root}/txn-c", b"c")
    failed = t.commit()
    emit(
        step="transaction",
        ok=[r if isinstance(r, (str, bool)) else type(r).__name__ for r in ok],
        failed=[type(r).__name__ for r in failed],
        b_exists=zk.exists(f"{root}/txn-b") is not None,
        data=zk.get(watched)[0].decode(),
    )

    # ACLs: the world ACL, which kazoo gives a node unless told otherwise.
    acls, _ = zk.get_acls(watched)
    emit(step="acl", acls=[(a.perms, a.id.scheme, a.id.id) for a in acls])

    # A lock with three contenders, each its own session: never two holders at once.
    counter = f"{root}/counter"
    zk.create(counter, b"0")
    holders, most, lock = [0], [0], threading.Lock()
    errors = []

    def contend(n):
        try:
            c = client(args)
            for _ in range(5):
                with c.Lock(f"{root}/lock", f"contender-{n}"):
                    with lock:
                        holders[0] += 1
                        most[0] = max(most[0], holders[0])
                    value, stat = c.get(counter)
                    c.set(counter, str(int(value) + 1).encode(), version=stat.version)
                    with lock:
                        holders[0] -= 1
            c.stop()
            c.close()
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    emit(step="lock", counter=int(zk.get(counter)[0]), most_holders=most[0], errors=errors)
    zk.stop()
    zk.close()


def failover(args):
    from kazoo.protocol.states import KazooState

    zk = client(args, timeout=15.0)
    states = []
    zk.add_listener(lambda s: states.append(s))
    base = "/failover"
    zk.ensure_path(base)
    zk.create(f"{base}/data", b"before", makepath=True)
    ephemeral = zk.create(f"{base}/alive", b"", ephemeral=True)
    data_seen, children_seen = [], []
    zk.DataWatch(f"{base}/data", lambda d, s: data_seen.append(None if d is None else d.decode()))
    zk.ChildrenWatch(base, lambda c: children_seen.append(sorted(c)))
    session = zk.client_id[0]
    peer = zk._connection._socket.getpeername()
    emit(step="connected", session=session, port=peer[1])
    if sys.stdin.readline().strip() != "killed":
        emit(step="error", error="expected 'killed' on stdin")
        sys.exit(1)
    lost = wait_until(lambda: KazooState.SUSPENDED in states, 30)
    back = wait_until(lambda: states and states[-1] == KazooState.CONNECTED, 60)
    new_peer = zk._connection._socket.getpeername() if back else None
    # Another session changes what this one watches: the events still come.
    other = client(args)
    other.set(f"{base}/data", b"after")
    other.create(f"{base}/child", b"")
    wait_until(lambda: "after" in data_seen, 20)
    wait_until(lambda: any("child" in c for c in children_seen), 20)
    emit(
        step="survived",
        suspended=bool(lost),
        reconnected=bool(back),
        same_session=zk.client_id[0] == session,
        new_port=new_peer[1] if new_peer else None,
        ephemeral_exists=other.exists(ephemeral) is not None,
        data=data_seen,
        children=children_seen,
        lost_session=KazooState.LOST in states,
    )
    other.stop()
    other.close()
    zk.stop()
    zk.close()


def hold_lock(args):
    """Holds a kazoo Lock on --path until a line arrives on stdin, then releases it."""
    zk = client(args)
    lock = zk.Lock(args.path, "kazoo")
    lock.acquire(timeout=30)
    emit(step="held", held=lock.is_acquired)
    sys.stdin.readline()
    lock.release()
    emit(step="released")
    zk.stop()
    zk.close()


def try_lock(args):
    """Tries a kazoo Lock on --path for one second and says whether it got it."""
    zk = client(args)
    lock = zk.Lock(args.path, "kazoo")
    from kazoo.exceptions import LockTimeout

    emit(step="contenders", contenders=lock.contenders())
    try:
        got = lock.acquire(timeout=1)
    except LockTimeout:
        got = False
    emit(step="tried", acquired=bool(got))
    if got:
        lock.release()
    zk.stop()
    zk.close()


def main():
    need_kazoo()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["basics", "failover", "hold-lock", "try-lock"])
    parser.add_argument("--path", default="/locks/shared", help="the lock's path (hold-lock, try-lock)")
    parser.add_argument("--hosts", required=True, help="host:port[,host:port...] of the door's TLS ports")
    parser.add_argument("--tls", required=True, help="DIR:NAME: DIR/ca.pem, DIR/NAME.pem, DIR/NAME.key")
    args = parser.parse_args()
    {"basics": basics, "failover": failover, "hold-lock": hold_lock, "try-lock": try_lock}[args.command](args)


if __name__ == "__main__":
    main()
