"""S3 objects: uploads, presigned downloads and presigned POST uploads, all under the tenant's prefix."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from botocore.exceptions import ClientError

from chalicelib.store.aws import calls_to

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

DOWNLOAD_URL_SECONDS = 300
UPLOAD_URL_SECONDS = 900
MAX_PRESIGNED_UPLOAD_BYTES = 5 * 1024**3  # S3's single PUT/POST limit


@dataclass(frozen=True)
class UploadForm:
    """A presigned POST: the URL, the form fields to send with the file, and how long it is valid."""

    url: str
    fields: dict[str, str]
    expires_in: int


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified_ms: int
    checksum: Optional[str]


@calls_to("S3")
@dataclass
class ObjectStore:
    client: S3Client
    bucket: str

    def put(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                               ChecksumSHA256=digest)
        info = self.head(key)
        if info is None:
            return ObjectInfo(key, len(data), 0, digest)
        # the digest computed here is the one S3 verified; keep it whatever form HEAD reports
        return ObjectInfo(key, info.size, info.last_modified_ms, digest)

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def get_if_exists(self, key: str) -> Optional[bytes]:
        try:
            return self.get(key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Internal objects (checkpoints, specs): no checksum round trip, no registration."""
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def list_keys(self, prefix: str, start_after: Optional[str], limit: int) -> list[str]:
        """Up to `limit` (at most 1,000) keys under a prefix, in key order, after `start_after`: one request."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": limit}
        if start_after:
            kwargs["StartAfter"] = start_after
        return [o["Key"] for o in self.client.list_objects_v2(**kwargs).get("Contents", [])]

    def delete_keys(self, keys: list[str]) -> None:
        """Delete up to 1,000 objects in one request; an object S3 refused to delete is an error."""
        result = self.client.delete_objects(Bucket=self.bucket,
                                            Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        errors = result.get("Errors", [])
        if errors:
            raise RuntimeError(f"S3 refused to delete {len(errors)} objects, e.g. {errors[0].get('Key')!r}: "
                               f"{errors[0].get('Code')}")

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under a prefix, 1,000 a request; returns how many."""
        removed = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            batch: list[ObjectIdentifierTypeDef] = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if batch:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
                removed += len(batch)
        return removed

    def head(self, key: str) -> Optional[ObjectInfo]:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        checksum = head.get("ChecksumSHA256") or head.get("ETag", "").strip('"') or None
        modified = int(head["LastModified"].timestamp() * 1000)
        return ObjectInfo(key, int(head["ContentLength"]), modified, checksum)

    def download_url(self, key: str, filename: str, expires_seconds: int = DOWNLOAD_URL_SECONDS) -> str:
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{filename}"'},
            ExpiresIn=expires_seconds,
        )

    def delete(self, key: str) -> None:
        """Delete one object; deleting one that is not there is not an error (S3's own rule)."""
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def upload_form(self, key: str, content_type: str) -> UploadForm:
        """A presigned POST bound to exactly this key, this content type and S3's size limit."""
        form = self.client.generate_presigned_post(
            Bucket=self.bucket, Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, MAX_PRESIGNED_UPLOAD_BYTES]],
            ExpiresIn=UPLOAD_URL_SECONDS,
        )
        return UploadForm(url=form["url"], fields=dict(form["fields"]), expires_in=UPLOAD_URL_SECONDS)
