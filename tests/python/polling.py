"""The one polling loop of the Python drivers in this directory (kafka_clients.py,
kafka_acls.py, zookeeper_clients.py): a condition with a deadline."""

import time


def wait_until(check, timeout, interval=0.05):
    """Calls check() until it returns something true or `timeout` seconds have passed;
    returns its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer or time.monotonic() >= deadline:
            return answer
        time.sleep(interval)
