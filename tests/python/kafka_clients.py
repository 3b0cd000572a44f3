#!/usr/bin/env python3
"""Kafka's own Python clients against Sluice's Kafka door, driven by tests/tests/kafka_door.rs.

Every command prints one JSON object per line on stdout (flushed), so the Rust test can act
mid-run (kill a broker once records are acknowledged, a consumer once it holds partitions).
A missing client library exits with status 3 and the pip command that installs it.

Commands (each takes --bootstrap and --tls DIR:NAME, the cluster's ca.pem and NAME.pem/.key):
  produce   confluent-kafka producer: acks, idempotence, compression; one line per ack
  consume   confluent-kafka consumer with manual assignment, from the beginning to the end
  admin     confluent-kafka AdminClient: create, describe, alter configs, add partitions,
            delete topics, describe the cluster
  group     kafka-python consumer in a group: assignments, records, commits
  reassign  kafka-python KafkaAdminClient: move partition 0 onto --target, list the moves
            until none is left
"""

import argparse
import json
import os
import signal
import sys
import time

from polling import wait_until  # this directory is on the path when run as a script


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def need(module, package):
    try:
        return __import__(module)
    except ImportError:
        sys.stderr.write(f"the Python module {module} is missing: pip install {package} (.ci/run does)\n")
        sys.exit(3)


def tls_files(spec):
    directory, name = spec.split(":", 1)
    return (
        os.path.join(directory, "ca.pem"),
        os.path.join(directory, f"{name}.pem"),
        os.path.join(directory, f"{name}.key"),
    )


def rdkafka_config(args, **extra):
    ca, cert, key = tls_files(args.tls)
    config = {
        "bootstrap.servers": args.bootstrap,
        "security.protocol": "ssl",
        "ssl.ca.location": ca,
        "ssl.certificate.location": cert,
        "ssl.key.location": key,
    }
    config.update(extra)
    # librdkafka's own debug contexts (e.g. RDKAFKA_DEBUG=eos,msg) on stderr, for replaying a
    # failure with the client's view of it.
    if os.environ.get("RDKAFKA_DEBUG"):
        config["debug"] = os.environ["RDKAFKA_DEBUG"]
    return config


def produce(args):
    ck = need("confluent_kafka", "confluent-kafka")
    config = rdkafka_config(
        args,
        **{
            "acks": args.acks,
            "enable.idempotence": args.idempotent,
            "compression.type": args.compression,
            "linger.ms": 5,
            "delivery.timeout.ms": 120000,
            "message.timeout.ms": 120000,
        },
    )
    producer = ck.Producer(config)
    failures = []

    def delivered(err, msg):
        if err is not None:
            failures.append(str(err))
            emit(event="failed", error=str(err), value=msg.value().decode())
        else:
            emit(event="acked", partition=msg.partition(), offset=msg.offset(), key=msg.key().decode(),
                 value=msg.value().decode())

    for i in range(args.count):
        key = f"k{i % 97}"
        value = f"{args.prefix}-{i:06d}"
        while True:
            try:
                producer.produce(args.topic, key=key.encode(), value=value.encode(),
                                 headers=[("n", str(i).encode())], on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        # Paced (the rate the tests kill a leader at), serving delivery callbacks meanwhile.
        producer.poll(args.pace_ms / 1000.0 if args.pace_ms else 0)
    remaining = producer.flush(120)
    emit(event="done", remaining=remaining, failures=len(failures))
    sys.exit(0 if remaining == 0 and not failures else 1)


def consume(args):
    ck = need("confluent_kafka", "confluent-kafka")
    consumer = ck.Consumer(rdkafka_config(args, **{"group.id": "kafka-door-reader", "enable.auto.commit": False,
                                                   "auto.offset.reset": "earliest"}))
    metadata = consumer.list_topics(args.topic, timeout=30)
    partitions = sorted(metadata.topics[args.topic].partitions.keys())
    ends = {}
    for p in partitions:
        low, high = consumer.get_watermark_offsets(ck.TopicPartition(args.topic, p), timeout=30)
        ends[p] = high
    consumer.assign([ck.TopicPartition(args.topic, p, ck.OFFSET_BEGINNING) for p in partitions])
    position = {p: 0 for p in partitions}
    deadline = time.time() + args.timeout
    while any(position[p] < ends[p] for p in partitions):
        if time.time() > deadline:
            emit(event="timeout", position=position, ends=ends)
            sys.exit(1)
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            emit(event="error", error=str(msg.error()))
            continue
        headers = {k: v.decode() for k, v in (msg.headers() or [])}
        emit(event="record", partition=msg.partition(), offset=msg.offset(),
             key=msg.key().decode() if msg.key() is not None else None,
             value=msg.value().decode(), headers=headers, timestamp=msg.timestamp()[1])
        position[msg.partition()] = msg.offset() + 1
    consumer.close()
    emit(event="done", ends=ends)


def admin(args):
    ck = need("confluent_kafka", "confluent-kafka")
    from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions, ConfigResource

    client = AdminClient(rdkafka_config(args))
    topic = args.topic

    def wait(futures):
        out = {}
        for name, future in futures.items():
            try:
                future.result(timeout=30)
                out[str(name)] = None
            except Exception as e:  # the test reads the error text
                out[str(name)] = str(e)
        return out

    emit(step="create", result=wait(client.create_topics(
        [NewTopic(topic, num_partitions=2, replication_factor=3, config={"retention.ms": "3600000"})])))
    emit(step="create-again", result=wait(client.create_topics([NewTopic(topic, num_partitions=2,
                                                                         replication_factor=3)])))
    def led(count):
        t = client.list_topics(topic, timeout=30).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == count and all(
                p.leader >= 0 for p in t.partitions.values()):
            return t
        return None

    t = wait_until(lambda: led(2), 30)
    if t is None:
        emit(step="describe", error="the topic did not get leaders")
        sys.exit(1)
    emit(step="describe", partitions={str(p.id): {"leader": p.leader, "replicas": p.replicas, "isrs": p.isrs}
                                      for p in t.partitions.values()})

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    described = client.describe_configs([resource])[resource].result(timeout=30)
    emit(step="describe-configs", configs={k: v.value for k, v in described.items()})

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, set_config={"retention.ms": "7200000",
                                                                            "max.message.bytes": "2000"})
    emit(step="alter-configs", result=wait(client.alter_configs([resource])))
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    described = client.describe_configs([resource])[resource].result(timeout=30)
    emit(step="describe-configs-after", configs={k: v.value for k, v in described.items()})

    # The partitions' logs took the new max.message.bytes: a 5,000-byte record is refused.
    producer = ck.Producer(rdkafka_config(args, **{"acks": "all", "message.timeout.ms": 30000,
                                                   "retries": 0}))
    def refused():
        # Brokers learn of the change from the controller: true once the record is refused.
        result = []
        producer.produce(topic, value=b"x" * 5000, partition=0,
                         on_delivery=lambda err, msg: result.append(str(err) if err else None))
        producer.flush(30)
        emit(step="oversize-attempt", outcome=result[0] if result else "no answer")
        return result[0] if result else None

    emit(step="oversize-after-alter", outcome=wait_until(refused, 30))
    # A live producer keeps asking for the topic's metadata, which would create it again
    # after the delete below (auto.create.topics.enable, as in Kafka).
    del producer

    emit(step="create-partitions", result=wait(client.create_partitions([NewPartitions(topic, 4)])))
    t = wait_until(lambda: led(4), 30)
    if t is None:
        t = client.list_topics(topic, timeout=30).topics.get(topic)
        emit(step="partitions-after", count=len(t.partitions) if t is not None else 0)
        sys.exit(1)
    emit(step="partitions-after", count=len(t.partitions))

    # DeleteRecords: partition 0 starts at 6 afterwards; an offset past the high watermark
    # is refused for its partition.
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import OffsetSpec
    producer = ck.Producer(rdkafka_config(args, **{"acks": "all", "message.timeout.ms": 30000}))
    for i in range(10):
        producer.produce(topic, value=str(i).encode(), partition=0)
    emit(step="produce-for-delete", unsent=producer.flush(30))
    del producer
    deleted = {}
    for tp, future in client.delete_records([TopicPartition(topic, 0, 6), TopicPartition(topic, 1, 1000)],
                                            request_timeout=30).items():
        try:
            deleted[str(tp.partition)] = {"low_watermark": future.result(timeout=30).low_watermark}
        except Exception as e:  # the test reads the error text
            deleted[str(tp.partition)] = {"error": str(e)}
    emit(step="delete-records", result=deleted)
    earliest = client.list_offsets({TopicPartition(topic, 0): OffsetSpec.earliest()}, request_timeout=30)
    emit(step="earliest-after-delete", offset=[f.result(timeout=30).offset for f in earliest.values()][0])

    cluster = client.describe_cluster(request_timeout=30).result(timeout=30)
    emit(step="describe-cluster", cluster_id=cluster.cluster_id, controller=cluster.controller.id,
         brokers=sorted(n.id for n in cluster.nodes))

    emit(step="delete", result=wait(client.delete_topics([topic])))
    gone = wait_until(lambda: topic not in client.list_topics(timeout=30).topics, 30)
    emit(step="deleted", gone=gone)
    if not gone:
        sys.exit(1)


def group(args):
    kafka = need("kafka", "kafka-python")
    ca, cert, key = tls_files(args.tls)
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=args.bootstrap.split(","),
        group_id=args.group,
        client_id=args.name,
        security_protocol="SSL",
        ssl_cafile=ca,
        ssl_certfile=cert,
        ssl_keyfile=key,
        ssl_check_hostname=False,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    consumer.subscribe([args.topic])
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    last = None
    deadline = time.time() + args.timeout
    while not stopping and time.time() < deadline:
        batches = consumer.poll(timeout_ms=200)
        assigned = sorted(tp.partition for tp in consumer.assignment())
        if assigned != last:
            emit(event="assigned", name=args.name, partitions=assigned)
            last = assigned
        for tp, records in batches.items():
            for r in records:
                emit(event="record", name=args.name, partition=tp.partition, offset=r.offset,
                     value=r.value.decode())
        if batches:
            consumer.commit()
            emit(event="committed", name=args.name,
                 offsets={str(tp.partition): consumer.committed(tp) for tp in batches})
    consumer.close()
    emit(event="closed", name=args.name)


def reassign(args):
    kafka = need("kafka", "kafka-python")
    from kafka.admin import KafkaAdminClient

    ca, cert, key = tls_files(args.tls)
    client = KafkaAdminClient(
        bootstrap_servers=args.bootstrap.split(","),
        security_protocol="SSL",
        ssl_cafile=ca,
        ssl_certfile=cert,
        ssl_keyfile=key,
        ssl_check_hostname=False,
    )
    target = [int(b) for b in args.target.split(",")]
    moves = {kafka.TopicPartition(args.topic, 0): target, kafka.TopicPartition(args.topic, 9): target}
    result = client.alter_partition_reassignments(moves)
    emit(step="alter", result={str(tp.partition): (None if e is None else e.__name__) for tp, e in result.items()})

    def listed():
        ongoing = client.list_partition_reassignments()
        emit(step="list", ongoing={f"{tp.topic}-{tp.partition}": r for tp, r in ongoing.items()})
        return None if ongoing else True

    done = wait_until(listed, args.timeout, interval=0.2)
    emit(step="done", complete=bool(done))
    client.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("produce", "consume", "admin", "group", "reassign"):
        p = sub.add_parser(name)
        p.add_argument("--bootstrap", required=True)
        p.add_argument("--tls", required=True, help="DIR:NAME")
        p.add_argument("--topic", required=True)
        if name == "produce":
            p.add_argument("--count", type=int, default=1000)
            p.add_argument("--acks", default="all")
            p.add_argument("--idempotent", action="store_true")
            p.add_argument("--compression", default="none")
            p.add_argument("--prefix", default="v")
            p.add_argument("--pace-ms", type=float, default=0)
        if name in ("consume", "group", "reassign"):
            p.add_argument("--timeout", type=float, default=60)
        if name == "reassign":
            p.add_argument("--target", required=True, help="broker ids, comma-separated")
        if name == "group":
            p.add_argument("--group", required=True)
            p.add_argument("--name", required=True)
    args = parser.parse_args()
    {"produce": produce, "consume": consume, "admin": admin, "group": group, "reassign": reassign}[args.command](args)


if __name__ == "__main__":
    main()
