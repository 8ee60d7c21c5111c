"""Concurrent uploads while the server is killed (`upload`), and what is left after the
restart (`verify`): every acknowledged upload present, every listed object whole.

  upload ENDPOINT TOKEN BUCKET   prints `ACK <key>` per acknowledged PUT until the
                                 server goes away (or 2,000 uploads)
  verify ENDPOINT TOKEN BUCKET ACKED_FILE   prints OK, or fails

A key says its object's size (`t<thread>-<n>-<size>`); its bytes are derived from the
key, so any object can be checked on its own."""

import hashlib
import sys
import threading

import boto3
from botocore.config import Config


def client(endpoint, token):
    key_id, secret = token.split(".", 1)
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key_id, aws_secret_access_key=secret,
                        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))


def content(key, size):
    seed = hashlib.sha256(key.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def upload(endpoint, token, bucket):
    lock = threading.Lock()
    stop = threading.Event()

    def worker(t):
        s3 = client(endpoint, token)
        for n in range(250):
            if stop.is_set():
                return
            size = [1024, 64 * 1024, 700 * 1024, 2 * 1024 * 1024][(t + n) % 4]
            key = f"t{t}-{n}-{size}"
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=content(key, size))
            except Exception:
                stop.set()
                return
            with lock:
                print("ACK", key, flush=True)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def verify(endpoint, token, bucket, acked_file):
    s3 = client(endpoint, token)
    acked = {line.split()[1] for line in open(acked_file) if line.startswith("ACK ")}
    listed = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            listed[o["Key"]] = o["Size"]
    missing = acked - listed.keys()
    assert not missing, f"acknowledged but missing after the crash: {sorted(missing)[:10]}"
    for key, size in listed.items():
        expected = int(key.rsplit("-", 1)[1])
        assert size == expected, f"{key}: listed with {size} bytes, not {expected}"
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == content(key, expected), f"{key}: torn ({len(body)} bytes)"
    print(f"OK acked={len(acked)} listed={len(listed)}")


if __name__ == "__main__":
    mode, endpoint, token, bucket = sys.argv[1:5]
    if mode == "upload":
        upload(endpoint, token, bucket)
    else:
        verify(endpoint, token, bucket, sys.argv[5])
