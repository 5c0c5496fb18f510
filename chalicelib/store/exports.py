"""Streaming uploads to S3: a write-only file object backed by a multipart upload, so memory stays bounded."""
from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from chalicelib.store.aws import calls_to, service_calls

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last


@calls_to("S3")
class MultipartUpload(io.RawIOBase):
    """Bytes written here reach S3 in parts of `part_bytes`; at most one part is held in memory.

    Not seekable on purpose: `zipfile` then streams entries with data descriptors instead of
    seeking back to patch headers.
    """

    def __init__(self, client: S3Client, bucket: str, key: str, content_type: str,
                 part_bytes: int = 8 * 1024 * 1024) -> None:
        super().__init__()
        self._client, self._bucket, self._key = client, bucket, key
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._parts: list[CompletedPartTypeDef] = []
        self._written = 0
        with service_calls("S3"):
            self._upload_id = client.create_multipart_upload(Bucket=bucket, Key=key,
                                                             ContentType=content_type)["UploadId"]
        self.peak_buffer = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._written

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._buffer += chunk
        self._written += len(chunk)
        self.peak_buffer = max(self.peak_buffer, len(self._buffer))
        while len(self._buffer) >= self._part_bytes:
            self._upload(bytes(self._buffer[: self._part_bytes]))
            del self._buffer[: self._part_bytes]
        return len(chunk)

    def _upload(self, body: bytes) -> None:
        number = len(self._parts) + 1
        etag = self._client.upload_part(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                        PartNumber=number, Body=body)["ETag"]
        self._parts.append({"ETag": etag, "PartNumber": number})

    def complete(self) -> int:
        """Upload what is left and finish; returns the object's size."""
        if self._buffer or not self._parts:
            self._upload(bytes(self._buffer))
            self._buffer.clear()
        self._client.complete_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                               MultipartUpload={"Parts": self._parts})
        super().close()
        return self._written

    def abort(self) -> None:
        self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
        super().close()

    def close(self) -> None:  # zipfile closes its file object; completion is explicit
        pass
