"""A storage-triggered test function: for each object event it writes `<key>.seen`
into the same bucket with stock boto3 (credentials and endpoint from the environment
Wisp gives native functions), holding what the event said. Its own write triggers it
again: the event chain limit is what stops it."""

import json
import urllib.parse

import boto3

s3 = boto3.client("s3")


def handler(event, context):
    record = event["Records"][0]
    bucket = record["s3"]["bucket"]["name"]
    key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
    seen = {
        "key": key,
        "size": record["s3"]["object"]["size"],
        "etag": record["s3"]["object"]["eTag"],
        "event": record["eventName"],
        "source": record["eventSource"],
    }
    s3.put_object(Bucket=bucket, Key=key + ".seen", Body=json.dumps(seen).encode())
    return {"wrote": key + ".seen"}
