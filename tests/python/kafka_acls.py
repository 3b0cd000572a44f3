"""Kafka's ACLs through the Kafka door with confluent-kafka (librdkafka): a principal with no
ACL is refused with Kafka's codes; the admin grants with CreateAcls, reads them back with
DescribeAcls and takes them away with DeleteAcls. One JSON line per step, for
tests/tests/acls.rs."""

import argparse
import json
import sys
import time

from polling import wait_until  # this directory is on the path when run as a script

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

TOPIC = "door"


def say(step, **fields):
    print(json.dumps({"step": step, **fields}), flush=True)


def conf(args, cert, key):
    return {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": "ssl",
        "ssl.ca.location": args.ca,
        "ssl.certificate.location": cert,
        "ssl.key.location": key,
    }


def produce(c, n, idempotent=False):
    """Produces n records; returns (delivered, first error code)."""
    p = Producer({**c, "message.timeout.ms": 10000, "enable.idempotence": idempotent})
    out = {"delivered": 0, "code": None}

    def done(err, _msg):
        if err is None:
            out["delivered"] += 1
        elif out["code"] is None:
            out["code"] = err.code()

    for i in range(n):
        p.produce(TOPIC, value=f"r{i}".encode(), on_delivery=done)
    p.flush(30)
    return out["delivered"], out["code"]


def visible(c):
    return TOPIC in AdminClient(c).list_topics(timeout=10).topics


def error_code(future):
    try:
        future.result(timeout=15)
        return 0
    except KafkaException as e:
        return e.args[0].code()


def main():
    ap = argparse.ArgumentParser()
    for flag in ("--bootstrap", "--ca", "--admin-cert", "--admin-key", "--user-cert", "--user-key"):
        ap.add_argument(flag, required=True)
    args = ap.parse_args()
    admin_conf = conf(args, args.admin_cert, args.admin_key)
    user_conf = conf(args, args.user_cert, args.user_key)
    admin = AdminClient(admin_conf)
    for f in admin.create_topics([NewTopic(TOPIC, 1, 1)]).values():
        f.result(timeout=30)

    say("hidden", visible=visible(user_conf))
    delivered, code = produce(user_conf, 1)
    say("refused_produce", delivered=delivered, code=code)

    grants = [
        AclBinding(ResourceType.TOPIC, TOPIC, ResourcePatternType.LITERAL, "User:alice", "*", op, AclPermissionType.ALLOW)
        for op in (AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.CREATE)
    ]
    # Alice may not grant herself anything.
    user_admin = AdminClient(user_conf)  # kept alive until its futures resolve
    codes = [error_code(f) for f in user_admin.create_acls(grants[:1]).values()]
    say("refused_admin", code=codes[0])
    for f in admin.create_acls(grants).values():
        f.result(timeout=15)
    everything = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY
    )
    described = admin.describe_acls(everything).result(timeout=15)
    say("described", count=len(described), acls=[str(b) for b in described])

    say("visible", visible=wait_until(lambda: visible(user_conf), 10))
    delivered, code = produce(user_conf, 10, idempotent=True)
    say("produced", delivered=delivered, code=code)

    consumer = Consumer({**user_conf, "group.id": "dg", "auto.offset.reset": "earliest"})
    consumer.subscribe([TOPIC])
    group_code = None
    deadline = time.time() + 20
    while group_code is None and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is not None:
            group_code = msg.error().code()
    consumer.close()
    say("refused_group", code=group_code)

    deleted = admin.delete_acls([everything])
    removed = [b for f in deleted.values() for b in f.result(timeout=15)]
    say("deleted", count=len(removed))
    code = wait_until(lambda: produce(user_conf, 1)[1], 10, interval=0.1)
    say("refused_again", code=code)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the test prints what happened
        say("error", error=repr(e))
        sys.exit(1)
