"""boto3 against Wisp's S3 listener: every operation the issue lists, and the bad input
each must refuse with S3's error code. Run by tests/all/s3.rs with the endpoint, an
admin key, an invoke key and a key of another namespace; prints OK at the end."""

import datetime
import gzip
import hashlib
import io
import sys
import urllib.request

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, admin, invoke_key, other = sys.argv[1:5]


def client(token, **config):
    key_id, secret = token.split(".", 1)
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, **config),
    )


def refused(code, call, *args, status=None, **kwargs):
    try:
        call(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"{call.__name__}: expected {code}, got {got}: {e}"
        if status is not None:
            got_status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            assert got_status == status, f"{call.__name__}: expected HTTP {status}, got {got_status}"
        return e
    raise AssertionError(f"{call.__name__} was not refused (expected {code})")


s3 = client(admin)
s3.create_bucket(Bucket="things")
refused("BucketAlreadyOwnedByYou", s3.create_bucket, Bucket="things", status=409)
assert "things" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
s3.head_bucket(Bucket="things")
assert s3.get_bucket_location(Bucket="things").get("LocationConstraint") in (None, "")

# Objects: metadata, content type, ETag (MD5), ranges, conditions.
body = b"0123456789" * 100
put = s3.put_object(Bucket="things", Key="dir/a.txt", Body=body, ContentType="text/plain",
                    Metadata={"colour": "blue"})
assert put["ETag"] == '"%s"' % hashlib.md5(body).hexdigest(), put["ETag"]
head = s3.head_object(Bucket="things", Key="dir/a.txt")
assert head["ContentLength"] == 1000 and head["ContentType"] == "text/plain", head
assert head["Metadata"] == {"colour": "blue"}, head["Metadata"]
got = s3.get_object(Bucket="things", Key="dir/a.txt", Range="bytes=10-19")
assert got["Body"].read() == b"0123456789" and got["ContentRange"] == "bytes 10-19/1000", got
assert s3.get_object(Bucket="things", Key="dir/a.txt", Range="bytes=-5")["Body"].read() == b"56789"
refused("InvalidRange", s3.get_object, Bucket="things", Key="dir/a.txt", Range="bytes=1000-", status=416)
e = refused("304", s3.get_object, Bucket="things", Key="dir/a.txt", IfNoneMatch=put["ETag"])
validators = e.response["ResponseMetadata"]["HTTPHeaders"]
assert validators.get("etag") == put["ETag"] and validators.get("last-modified"), validators
e = refused("304", s3.head_object, Bucket="things", Key="dir/a.txt", IfNoneMatch=put["ETag"])
assert e.response["ResponseMetadata"]["HTTPHeaders"].get("etag") == put["ETag"], e.response
refused("PreconditionFailed", s3.get_object, Bucket="things", Key="dir/a.txt", IfMatch='"nope"', status=412)
assert s3.get_object(Bucket="things", Key="dir/a.txt", IfMatch=put["ETag"])["ContentLength"] == 1000
refused("304", s3.get_object, Bucket="things", Key="dir/a.txt", IfModifiedSince=head["LastModified"])
refused("NoSuchKey", s3.get_object, Bucket="things", Key="missing", status=404)
refused("NoSuchBucket", s3.get_object, Bucket="nothing-here", Key="x", status=404)

# Copy, with the source's metadata or replaced.
s3.copy_object(Bucket="things", Key="dir/b.txt", CopySource={"Bucket": "things", "Key": "dir/a.txt"})
assert s3.head_object(Bucket="things", Key="dir/b.txt")["Metadata"] == {"colour": "blue"}
s3.copy_object(Bucket="things", Key="c.txt", CopySource="things/dir/a.txt", MetadataDirective="REPLACE",
               Metadata={"colour": "red"}, ContentType="text/x-red")
head = s3.head_object(Bucket="things", Key="c.txt")
assert head["Metadata"] == {"colour": "red"} and head["ContentType"] == "text/x-red", head

# Listings: v2 with a delimiter and pages, v1 with a marker.
for i in range(5):
    s3.put_object(Bucket="things", Key=f"many/{i}", Body=b"x")
page = s3.list_objects_v2(Bucket="things", Delimiter="/")
assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["dir/", "many/"], page
assert [o["Key"] for o in page["Contents"]] == ["c.txt"], page
keys, token = [], None
while True:
    args = {"Bucket": "things", "Prefix": "many/", "MaxKeys": 2}
    if token:
        args["ContinuationToken"] = token
    page = s3.list_objects_v2(**args)
    keys += [o["Key"] for o in page["Contents"]]
    assert page["KeyCount"] <= 2
    if not page["IsTruncated"]:
        break
    token = page["NextContinuationToken"]
assert keys == [f"many/{i}" for i in range(5)], keys
v1 = s3.list_objects(Bucket="things", Prefix="many/", Marker="many/2")
assert [o["Key"] for o in v1["Contents"]] == ["many/3", "many/4"], v1
paginated = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket="things", PaginationConfig={"PageSize": 3}) for o in p.get("Contents", [])]
assert len(paginated) == 8, paginated

# Batch delete.
deleted = s3.delete_objects(Bucket="things", Delete={"Objects": [{"Key": f"many/{i}"} for i in range(5)]})
assert sorted(d["Key"] for d in deleted["Deleted"]) == [f"many/{i}" for i in range(5)], deleted
assert "Contents" not in s3.list_objects_v2(Bucket="things", Prefix="many/")

# Multipart: parts of 5 MiB and a tail; list parts and uploads; the ETag is MD5-of-MD5s-N.
part_a, part_b = b"a" * (5 * 1024 * 1024), b"b" * 1000
upload = s3.create_multipart_upload(Bucket="things", Key="big.bin", ContentType="application/x-big")
uid = upload["UploadId"]
e1 = s3.upload_part(Bucket="things", Key="big.bin", UploadId=uid, PartNumber=1, Body=part_a)["ETag"]
e2 = s3.upload_part(Bucket="things", Key="big.bin", UploadId=uid, PartNumber=2, Body=part_b)["ETag"]
assert [p["PartNumber"] for p in s3.list_parts(Bucket="things", Key="big.bin", UploadId=uid)["Parts"]] == [1, 2]
assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="things")["Uploads"]] == [uid]
refused("InvalidPart", s3.complete_multipart_upload, Bucket="things", Key="big.bin", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"' + "0" * 32 + '"'}]})
refused("InvalidPartOrder", s3.complete_multipart_upload, Bucket="things", Key="big.bin", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
e3 = s3.upload_part(Bucket="things", Key="big.bin", UploadId=uid, PartNumber=3, Body=part_b)["ETag"]
refused("EntityTooSmall", s3.complete_multipart_upload, Bucket="things", Key="big.bin", UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 3, "ETag": e3}]}, status=400)
done = s3.complete_multipart_upload(Bucket="things", Key="big.bin", UploadId=uid,
                                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
md5s = hashlib.md5(hashlib.md5(part_a).digest() + hashlib.md5(part_b).digest()).hexdigest()
assert done["ETag"] == '"%s-2"' % md5s, done["ETag"]
got = s3.get_object(Bucket="things", Key="big.bin")
assert got["Body"].read() == part_a + part_b and got["ContentType"] == "application/x-big"
refused("NoSuchUpload", s3.list_parts, Bucket="things", Key="big.bin", UploadId=uid, status=404)
aborted = s3.create_multipart_upload(Bucket="things", Key="gone.bin")["UploadId"]
s3.upload_part(Bucket="things", Key="gone.bin", UploadId=aborted, PartNumber=1, Body=b"x")
s3.upload_part_copy(Bucket="things", Key="gone.bin", UploadId=aborted, PartNumber=2,
                    CopySource={"Bucket": "things", "Key": "dir/a.txt"}, CopySourceRange="bytes=0-9")
parts = s3.list_parts(Bucket="things", Key="gone.bin", UploadId=aborted)["Parts"]
assert [p["Size"] for p in parts] == [1, 10], parts
s3.abort_multipart_upload(Bucket="things", Key="gone.bin", UploadId=aborted)
assert "Uploads" not in s3.list_multipart_uploads(Bucket="things")
refused("NoSuchKey", s3.get_object, Bucket="things", Key="gone.bin")

# The headers an object keeps: answered on get and head, kept by a copy, set anew by a
# REPLACE copy and by a multipart upload, and answered otherwise when a read asks.
expires = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
kept = {"CacheControl": "max-age=60", "ContentDisposition": 'attachment; filename="h.txt"',
        "ContentEncoding": "gzip", "ContentLanguage": "en", "Expires": expires}


def assert_kept(answer, what, expected=kept):
    for name, value in expected.items():
        assert answer.get(name) == value, f"{what}: {name} is {answer.get(name)!r}, not {value!r}"


zipped = gzip.compress(b"kept headers")
s3.put_object(Bucket="things", Key="h.txt", Body=zipped, ContentType="text/plain", **kept)
assert_kept(s3.head_object(Bucket="things", Key="h.txt"), "head")
got = s3.get_object(Bucket="things", Key="h.txt")
assert_kept(got, "get")
assert got["Body"].read() == zipped, "the bytes as stored"
later = datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
overridden = {"CacheControl": "no-store", "ContentDisposition": "inline", "ContentEncoding": "identity",
              "ContentLanguage": "fr", "Expires": later, "ContentType": "application/x-other"}
got = s3.get_object(Bucket="things", Key="h.txt", **{"Response" + k: v for k, v in overridden.items()})
assert_kept(got, "get with response-*", overridden)
got["Body"].read()
assert_kept(s3.head_object(Bucket="things", Key="h.txt"), "head after response-*")
s3.copy_object(Bucket="things", Key="h2.txt", CopySource="things/h.txt")
assert_kept(s3.head_object(Bucket="things", Key="h2.txt"), "copy")
s3.copy_object(Bucket="things", Key="h3.txt", CopySource="things/h.txt", MetadataDirective="REPLACE",
               CacheControl="no-cache", ContentType="text/plain")
replaced = s3.head_object(Bucket="things", Key="h3.txt")
assert replaced["CacheControl"] == "no-cache", replaced
assert not any(k in replaced for k in ("ContentDisposition", "ContentEncoding", "ContentLanguage", "Expires")), replaced
uid = s3.create_multipart_upload(Bucket="things", Key="h4.txt", **kept)["UploadId"]
e1 = s3.upload_part(Bucket="things", Key="h4.txt", UploadId=uid, PartNumber=1, Body=zipped)["ETag"]
s3.complete_multipart_upload(Bucket="things", Key="h4.txt", UploadId=uid,
                             MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
assert_kept(s3.get_object(Bucket="things", Key="h4.txt"), "multipart")

# Conditional writes and deletes: If-None-Match: * / If-Match on put and complete,
# If-Match on delete (and an ETag in DeleteObjects).
refused("PreconditionFailed", s3.put_object, Bucket="things", Key="cond.txt", Body=b"x", IfMatch="*", status=412)
v1 = s3.put_object(Bucket="things", Key="cond.txt", Body=b"v1", IfNoneMatch="*")["ETag"]
refused("PreconditionFailed", s3.put_object, Bucket="things", Key="cond.txt", Body=b"x", IfNoneMatch="*", status=412)
v2 = s3.put_object(Bucket="things", Key="cond.txt", Body=b"v2", IfMatch="*")["ETag"]
refused("PreconditionFailed", s3.put_object, Bucket="things", Key="cond.txt", Body=b"x", IfMatch=v1, status=412)
refused("PreconditionFailed", s3.delete_object, Bucket="things", Key="cond.txt", IfMatch=v1, status=412)
assert s3.get_object(Bucket="things", Key="cond.txt")["Body"].read() == b"v2", "a refused delete deletes nothing"
s3.delete_object(Bucket="things", Key="cond.txt", IfMatch=v2)
refused("NoSuchKey", s3.delete_object, Bucket="things", Key="cond.txt", IfMatch="*", status=404)
s3.delete_object(Bucket="things", Key="cond.txt")
uid = s3.create_multipart_upload(Bucket="things", Key="cond.txt")["UploadId"]
part = s3.upload_part(Bucket="things", Key="cond.txt", UploadId=uid, PartNumber=1, Body=b"by parts")["ETag"]
parts = {"Parts": [{"PartNumber": 1, "ETag": part}]}
refused("PreconditionFailed", s3.complete_multipart_upload, Bucket="things", Key="cond.txt", UploadId=uid,
        MultipartUpload=parts, IfMatch=v2, status=412)
first = s3.complete_multipart_upload(Bucket="things", Key="cond.txt", UploadId=uid, MultipartUpload=parts,
                                     IfNoneMatch="*")["ETag"]
uid = s3.create_multipart_upload(Bucket="things", Key="cond.txt")["UploadId"]
part = s3.upload_part(Bucket="things", Key="cond.txt", UploadId=uid, PartNumber=1, Body=b"again")["ETag"]
parts = {"Parts": [{"PartNumber": 1, "ETag": part}]}
refused("PreconditionFailed", s3.complete_multipart_upload, Bucket="things", Key="cond.txt", UploadId=uid,
        MultipartUpload=parts, IfNoneMatch="*", status=412)
s3.complete_multipart_upload(Bucket="things", Key="cond.txt", UploadId=uid, MultipartUpload=parts, IfMatch=first)
assert s3.get_object(Bucket="things", Key="cond.txt")["Body"].read() == b"again"
answer = s3.delete_objects(Bucket="things", Delete={"Objects": [{"Key": "cond.txt", "ETag": first}]})
assert [e["Code"] for e in answer.get("Errors", [])] == ["PreconditionFailed"], answer
etag_now = s3.head_object(Bucket="things", Key="cond.txt")["ETag"]
answer = s3.delete_objects(Bucket="things", Delete={"Objects": [{"Key": "cond.txt", "ETag": etag_now}]})
assert [d["Key"] for d in answer.get("Deleted", [])] == ["cond.txt"], answer

# Presigned URLs: a GET and a PUT with nothing but the URL.
url = s3.generate_presigned_url("get_object", Params={"Bucket": "things", "Key": "dir/a.txt"}, ExpiresIn=60)
assert urllib.request.urlopen(url).read() == body
signer = client(admin, signature_version="s3v4")
url = signer.generate_presigned_url("put_object", Params={"Bucket": "things", "Key": "presigned.txt"}, ExpiresIn=60)
urllib.request.urlopen(urllib.request.Request(url, data=b"via presigned PUT", method="PUT",
                                              headers={"Content-Type": "text/plain"})).read()
assert s3.get_object(Bucket="things", Key="presigned.txt")["Body"].read() == b"via presigned PUT"

# Bad input.
refused("KeyTooLongError", s3.put_object, Bucket="things", Key="k" * 1025, Body=b"x", status=400)
raw = client(admin)
raw.meta.events.unregister("before-parameter-build.s3", botocore.handlers.validate_bucket_name)
refused("InvalidBucketName", raw.create_bucket, Bucket="Bad_Name", status=400)
refused("BadDigest", s3.put_object, Bucket="things", Key="d", Body=b"abc", ContentMD5="1B2M2Y8AsgTpgAmY7PhCfg==", status=400)
key_id, _ = admin.split(".", 1)
forged = client(key_id + "." + "x" * 40)
refused("SignatureDoesNotMatch", forged.list_buckets, status=403)
refused("InvalidAccessKeyId", client("WKNOSUCHKEY234567AB.secret").list_buckets, status=403)
refused("BucketNotEmpty", s3.delete_bucket, Bucket="things", status=409)

# Another namespace sees nothing of this one; an invoke key reads but does not write.
stranger = client(other)
refused("NoSuchBucket", stranger.get_object, Bucket="things", Key="dir/a.txt", status=404)
refused("NoSuchBucket", stranger.put_object, Bucket="things", Key="x", Body=b"x", status=404)
assert "things" not in [b["Name"] for b in stranger.list_buckets()["Buckets"]]
reader = client(invoke_key)
assert reader.get_object(Bucket="things", Key="dir/a.txt")["Body"].read() == body
refused("AccessDenied", reader.put_object, Bucket="things", Key="x", Body=b"x", status=403)
refused("AccessDenied", reader.delete_object, Bucket="things", Key="dir/a.txt", status=403)

# Unsupported operations answer NotImplemented.
refused("NotImplemented", s3.get_bucket_tagging, Bucket="things", status=501)

print("OK")
