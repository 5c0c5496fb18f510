"""The local stack's data on disk (`AGORA_DATA_DIR`, default `.agora/`): kept as it is written, restored on start.

moto keeps everything in memory. The local stack is where a user tries Agora and may work for
weeks, so what it acknowledged must survive a restart, and a crash may lose only the last moments:

- moto_hardening's observers report, under the DynamoDB lock, which items each write request
  changed, and which S3 objects were written or deleted; keys are only noted then (cheap);
- every `FLUSH_SECONDS` a background thread appends the current image of each noted item and
  object to `journal.jsonl` (items as DynamoDB JSON; object bodies as content-addressed files under
  `blobs/`), then fsyncs: a crash loses at most that interval;
- when the journal outgrows the snapshot, it is compacted: the latest state of every key goes to a
  new `snapshot.jsonl` (written aside, then renamed), the journal starts empty, unreferenced blobs go;
- the KMS key material (so that stored LLM keys still decrypt) is kept in `kms.pickle`;
- on start the snapshot and then the journal are applied straight to moto's backends (a torn last
  line of a crash is skipped). Step Functions executions are not kept: the local stack starts a new
  execution for every simulation that was under way, and a built-in one resumes from its checkpoint.

One stack at a time may use a directory (an exclusive lock on `LOCK`); a directory written by a
different format or moto version is refused with a message (`make reset` empties it).
"""
from __future__ import annotations

import base64
import copyreg
import fcntl
import hashlib
import json
import logging
import os
import pickle
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Optional

import moto
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from devstack import moto_hardening

logger = logging.getLogger(__name__)

FORMAT = 2  # 2: metric catalogs (2026-12-01)
FLUSH_SECONDS = 1.0
MIN_COMPACT_BYTES = 64 * 1024 * 1024
ACCOUNT_ID = "123456789012"  # moto's default account, the local stack's only one
S3_PARTITION = "aws"


class DataDirError(RuntimeError):
    """The data directory cannot be used (in use, or written by another version)."""


@dataclass
class Restored:
    items: int = 0
    objects: int = 0
    seconds: float = 0.0


@dataclass
class Persistence:
    root: Path
    region: str
    flush_seconds: float = FLUSH_SECONDS
    _dirty_items: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)
    _dirty_objects: set[tuple[str, str]] = field(default_factory=set, repr=False)
    _dirty_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _io_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: Optional[threading.Thread] = field(default=None, repr=False)
    _lock_file: Any = field(default=None, repr=False)

    # ---- life cycle -------------------------------------------------------------------------------
    def open(self) -> bool:
        """Take the directory (creating it); True if it holds data from an earlier run."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "blobs").mkdir(exist_ok=True)
        self._lock_file = open(self.root / "LOCK", "a+")  # noqa: SIM115 - held for the stack's lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise DataDirError(f"{self.root} is in use by another local stack") from exc
        version = self.root / "VERSION"
        expected = {"format": FORMAT, "moto": moto.__version__}
        if version.exists():
            found = json.loads(version.read_text())
            if found != expected:
                raise DataDirError(f"{self.root} was written by {found}, this stack is {expected}: "
                                   "`make reset` empties it")
            return True
        version.write_text(json.dumps(expected))
        return False

    def start(self) -> None:
        """Watch writes from now on and flush them in the background."""
        moto_hardening.dynamodb_observers.append(self._note_items)
        moto_hardening.s3_observers.append(self._note_object)
        self._thread = threading.Thread(target=self._run, name="agora-persistence", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Flush what is pending and let the directory go."""
        for observers, observer in ((moto_hardening.dynamodb_observers, self._note_items),
                                    (moto_hardening.s3_observers, self._note_object)):
            if observer in observers:
                observers.remove(observer)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
                self._maybe_compact()
            except Exception:  # keep flushing: a failed flush keeps its keys noted for the next one
                logger.exception("could not write the local stack's data to %s", self.root)

    # ---- noting and flushing ----------------------------------------------------------------------
    def _note_items(self, keys: list[tuple[str, dict[str, Any]]]) -> None:
        with self._dirty_lock:
            for table, key in keys:
                self._dirty_items[(table, json.dumps(key, sort_keys=True))] = key

    def _note_object(self, bucket: str, key: str) -> None:
        with self._dirty_lock:
            self._dirty_objects.add((bucket, key))

    def flush(self) -> int:
        """Write the current image of everything noted since the last flush; returns how many records."""
        with self._io_lock:
            with self._dirty_lock:
                items, self._dirty_items = self._dirty_items, {}
                objects, self._dirty_objects = self._dirty_objects, set()
            if not items and not objects:
                return 0
            records = [self._object_record(bucket, key) for bucket, key in sorted(objects)]
            with moto_hardening.DYNAMODB_LOCK:  # one consistent moment of every table
                records += [self._item_record(table, key) for (table, _), key in items.items()]
            with open(self.root / "journal.jsonl", "a", encoding="utf-8") as journal:
                journal.write("".join(_line(r) for r in records))
                journal.flush()
                os.fsync(journal.fileno())
            return len(records)

    def _item_record(self, table: str, key: dict[str, Any]) -> dict[str, Any]:
        from moto.dynamodb.models import dynamodb_backends

        backend = dynamodb_backends[ACCOUNT_ID][self.region]
        if table not in backend.tables:  # never locally: the tables are the template's and stay
            return {"t": "item", "table": table, "key": key, "item": None}
        item = backend.get_item(table, key)
        return {"t": "item", "table": table, "key": key, "item": item.to_json()["Attributes"] if item else None}

    def _object_record(self, bucket: str, key: str) -> dict[str, Any]:
        from moto.s3.models import s3_backends

        for _ in range(3):  # a key overwritten while it is read is read again
            found = s3_backends[ACCOUNT_ID][S3_PARTITION].buckets.get(bucket)
            current = found.keys.get(key) if found is not None else None
            if current is None or not hasattr(current, "value"):
                return {"t": "object", "bucket": bucket, "key": key, "blob": None}
            try:
                body = current.value
            except ValueError:  # disposed by a concurrent overwrite
                continue
            digest = hashlib.sha256(body).hexdigest()
            blob = self.root / "blobs" / digest
            if not blob.exists():
                partial = blob.with_suffix(".part")
                partial.write_bytes(body)
                partial.replace(blob)
            return {"t": "object", "bucket": bucket, "key": key, "blob": digest,
                    "metadata": dict(current.metadata), "etag": current.etag.strip('"'),
                    "checksum": current.checksum_value, "checksum_algorithm": current.checksum_algorithm,
                    "modified": current.last_modified.isoformat()}
        self._note_object(bucket, key)
        return {"t": "object", "bucket": bucket, "key": key, "skip": True}

    # ---- compaction -------------------------------------------------------------------------------
    def _maybe_compact(self) -> None:
        journal, snapshot = self.root / "journal.jsonl", self.root / "snapshot.jsonl"
        size = journal.stat().st_size if journal.exists() else 0
        if size > max(MIN_COMPACT_BYTES, snapshot.stat().st_size if snapshot.exists() else 0):
            self.compact()

    def compact(self) -> None:
        """The latest record of every key into a new snapshot; the journal starts again empty."""
        with self._io_lock:
            state = self._latest()
            snapshot = self.root / "snapshot.jsonl"
            partial = snapshot.with_suffix(".part")
            with open(partial, "w", encoding="utf-8") as out:
                for record in state.values():
                    if record.get("item") is not None or record.get("blob") is not None:
                        out.write(_line(record))
                out.flush()
                os.fsync(out.fileno())
            partial.replace(snapshot)
            (self.root / "journal.jsonl").write_text("")
            kept = {r["blob"] for r in state.values() if r.get("blob")}
            for blob in (self.root / "blobs").iterdir():
                if blob.name not in kept:
                    blob.unlink(missing_ok=True)

    def _records(self) -> Iterator[dict[str, Any]]:
        for name in ("snapshot.jsonl", "journal.jsonl"):
            path = self.root / name
            if not path.exists():
                continue
            with open(path, encoding="utf-8") as lines:
                for line in lines:
                    try:
                        yield json.loads(line, object_hook=_from_json)
                    except ValueError:  # the torn last line of a crash
                        logger.warning("skipping an incomplete record in %s", path)

    def _latest(self) -> dict[tuple[str, ...], dict[str, Any]]:
        state: dict[tuple[str, ...], dict[str, Any]] = {}
        for record in self._records():
            if record.get("skip"):
                continue
            if record["t"] == "item":
                state[("item", record["table"], json.dumps(record["key"], sort_keys=True))] = record
            else:
                state[("object", record["bucket"], record["key"])] = record
        return state

    # ---- restoring --------------------------------------------------------------------------------
    def restore(self) -> Restored:
        """Apply the kept state to moto's (fresh) backends: call after the tables and the bucket exist."""
        from moto.dynamodb.models import dynamodb_backends
        from moto.s3.models import s3_backends

        began = time.monotonic()
        done = Restored()
        dynamodb = dynamodb_backends[ACCOUNT_ID][self.region]
        s3 = s3_backends[ACCOUNT_ID][S3_PARTITION]
        for record in self._latest().values():
            if record["t"] == "item" and record["item"] is not None:
                with moto_hardening.DYNAMODB_LOCK:
                    dynamodb.put_item(record["table"], record["item"])
                done.items += 1
            elif record["t"] == "object" and record.get("blob"):
                body = (self.root / "blobs" / record["blob"]).read_bytes()
                key = s3.put_object(record["bucket"], record["key"], body, etag=record.get("etag"),
                                    checksum_value=record.get("checksum"), disable_notification=True)
                key.set_metadata(record.get("metadata") or {}, replace=True)
                key.checksum_algorithm = record.get("checksum_algorithm")
                key.last_modified = datetime.fromisoformat(record["modified"])
                done.objects += 1
        done.seconds = time.monotonic() - began
        return done

    # ---- KMS key material -------------------------------------------------------------------------
    def keep_kms(self) -> None:
        """Keep the KMS backend (its keys and aliases) as it is now."""
        from moto.kms.models import kms_backends

        (self.root / "kms.pickle").write_bytes(pickle.dumps(kms_backends[ACCOUNT_ID][self.region],
                                                            protocol=pickle.HIGHEST_PROTOCOL))

    def restore_kms(self) -> bool:
        """Put the kept KMS backend back (the keys that sealed the stored secrets); False if none was kept."""
        from moto.kms.models import kms_backends

        path = self.root / "kms.pickle"
        if not path.exists():
            return False
        dict.__setitem__(kms_backends[ACCOUNT_ID], self.region, pickle.loads(path.read_bytes()))
        return True


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), default=_to_json) + "\n"


def _to_json(value: Any) -> Any:
    """Binary attribute values (moto keeps `B` and `BS` values as bytes) as {"$b64": ...}."""
    if isinstance(value, (bytes, bytearray)):
        return {"$b64": base64.b64encode(value).decode()}
    raise TypeError(f"cannot keep a {type(value).__name__}")


def _from_json(value: dict[str, Any]) -> Any:
    return base64.b64decode(value["$b64"]) if value.keys() == {"$b64"} else value


def _load_private_key(pem: bytes) -> Any:
    return serialization.load_pem_private_key(pem, password=None)


def _reduce_private_key(key: Any) -> tuple[Any, tuple[bytes]]:
    return _load_private_key, (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()),)


# every moto KMS key holds a `cryptography` private key object, which pickles only as PEM
copyreg.pickle(type(rsa.generate_private_key(public_exponent=65537, key_size=1024)), _reduce_private_key)
copyreg.pickle(type(ec.generate_private_key(ec.SECP256R1())), _reduce_private_key)
