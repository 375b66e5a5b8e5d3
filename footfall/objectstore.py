"""The object store boundary: a small protocol, its S3 implementation (AWS, MinIO, SeaweedFS
alike, through boto3), and an in-memory fake for unit tests."""

import hashlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from footfall.connections import ObjectStoreSettings, ServerSideEncryption

log = logging.getLogger(__name__)


class ObjectStoreError(Exception):
    """The store refused or could not be reached; the message says which and why."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    content_type: str | None
    metadata: dict[str, str]


class ObjectStore(Protocol):
    def put_bytes(
        self, key: str, data: bytes, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None: ...

    def put_file(
        self, key: str, path: Path, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None: ...

    def head(self, key: str) -> StoredObject | None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def presigned_get(self, key: str, expires_seconds: int) -> str: ...


class S3ObjectStore:
    """One bucket of an S3-compatible store."""

    def __init__(
        self, settings: ObjectStoreSettings, *, connect_timeout: float = 5.0, retries: int = 3
    ) -> None:
        import boto3
        from botocore.config import Config

        self.settings = settings
        self.bucket = settings.bucket
        config = Config(
            region_name=settings.region,
            signature_version="s3v4",
            s3={"addressing_style": settings.addressing_style},
            connect_timeout=connect_timeout,
            read_timeout=30,
            retries={"max_attempts": retries, "mode": "standard"},
        )
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_value(),
            config=config,
        )

    def _extra(self, content_type: str, metadata: Mapping[str, str] | None) -> dict[str, Any]:
        extra: dict[str, Any] = {"ContentType": content_type, "Metadata": dict(metadata or {})}
        sse = self.settings.server_side_encryption
        if sse is not ServerSideEncryption.NONE:
            extra["ServerSideEncryption"] = sse.value
            if sse is ServerSideEncryption.KMS and self.settings.kms_key_id:
                extra["SSEKMSKeyId"] = self.settings.kms_key_id
        return extra

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        extra = self._extra(content_type, metadata)
        with _errors(f"put s3://{self.bucket}/{key}"):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)

    def put_file(
        self, key: str, path: Path, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        # One PUT, not a multipart upload: a reader sees the old object or the complete new one.
        with _errors(f"put s3://{self.bucket}/{key}"), path.open("rb") as fh:
            self._client.put_object(
                Bucket=self.bucket, Key=key, Body=fh, **self._extra(content_type, metadata)
            )

    def head(self, key: str) -> StoredObject | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise ObjectStoreError(
                f"head s3://{self.bucket}/{key}: {describe_s3_error(exc)}"
            ) from None
        except BotoCoreError as exc:  # connection errors and the like
            raise ObjectStoreError(
                f"head s3://{self.bucket}/{key}: {describe_s3_error(exc)}"
            ) from None
        return StoredObject(
            key,
            int(answer["ContentLength"]),
            answer.get("ContentType"),
            dict(answer.get("Metadata", {})),
        )

    def get_bytes(self, key: str) -> bytes:
        with _errors(f"get s3://{self.bucket}/{key}"):
            body: BinaryIO = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            return body.read()

    def presigned_get(self, key: str, expires_seconds: int) -> str:
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_seconds
        )
        return url


@contextmanager
def _errors(what: str) -> Iterator[None]:
    """Turn boto's many exception types into one ObjectStoreError with a readable reason."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise ObjectStoreError(f"{what}: {describe_s3_error(exc)}") from None


# What to do about the answers an operator can fix (S3's own error codes).
_ADVICE = {
    "InvalidAccessKeyId": "check s3.access_key_id",
    "SignatureDoesNotMatch": "check the S3 secret key",
    "AccessDenied": "check the key's permissions on the bucket",
    "NoSuchBucket": "check s3.bucket, or create the bucket",
}


def describe_s3_error(exc: BaseException) -> str:
    """One line for an error of the S3 client, with what to do where the operator can fix it."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "error")
        text = f"{code}: {err.get('Message', '')}".rstrip(": ")
        advice = _ADVICE.get(code)
        return f"{text}; {advice}" if advice else text
    if isinstance(exc, EndpointConnectionError):
        return f"{exc}; check s3.endpoint_url and that the object store is running"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return f"{exc}; set s3.access_key_id and the secret key (or its file)"
    return str(exc)


class MemoryObjectStore:
    """A fake for unit tests of logic that stores objects."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        self.fail_with: str | None = None

    def put_bytes(
        self, key: str, data: bytes, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        if self.fail_with:
            raise ObjectStoreError(self.fail_with)
        self.objects[key] = (data, content_type, dict(metadata or {}))

    def put_file(
        self, key: str, path: Path, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        self.put_bytes(key, path.read_bytes(), content_type=content_type, metadata=metadata)

    def head(self, key: str) -> StoredObject | None:
        if key not in self.objects:
            return None
        data, ctype, meta = self.objects[key]
        return StoredObject(key, len(data), ctype, meta)

    def get_bytes(self, key: str) -> bytes:
        return self.objects[key][0]

    def presigned_get(self, key: str, expires_seconds: int) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return f"memory://{key}?expires={expires_seconds}&sig={digest}"
