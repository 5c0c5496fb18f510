"""Simulation data, packed: one item per instant (every agent), one item per agent per step batch.

Two reads stay one query each however long the run: all agents at one instant (one tick item),
and one agent's whole history (its own partition). A step of T ticks with N agents writes
T tick items plus N agent chunks, not N x T rows.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional

from chalicelib.domain.clock import new_id, now_iso
from chalicelib.store import keys
from chalicelib.store.dynamo import Condition, SortRange, Table, Update

if TYPE_CHECKING:
    from chalicelib.store.objects import ObjectStore

INLINE_LIMIT = 300_000  # bytes of compressed agent states kept in the tick item; above, in S3
LOG_LINES = 1_000
STREAM_PAGE = 16  # instants per page when streaming: memory holds at most this many, whatever the run's length
_PROMPT_ATTRIBUTES = ("day", "t", "prompt", "created_at")


def pack(value: Any) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 6)


def unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))


@dataclass
class AgentDataStore:
    table: Table
    objects: ObjectStore

    # writes -------------------------------------------------------------------------------------
    def write_step(self, tenant_id: str, experiment_id: str, *, ticks: list[dict], dialogs: list[dict],
                   surveys: list[dict], profiles: Optional[list[dict]] = None) -> int:
        """Write one step's records; every key is deterministic, so a retried step overwrites itself.

        Returns the number of items written (the cost of the step, in writes).
        """
        written_at = now_iso()
        items: list[dict[str, Any]] = []
        for profile in profiles or []:
            agent_id = int(profile["id"])
            items.append({**keys.profile_key(tenant_id, experiment_id, agent_id), "agent_id": agent_id,
                          "body": json.dumps(profile)})
        per_agent: dict[int, list[dict]] = {}
        for tick in ticks:
            blob = pack(tick["statuses"])
            item = {**keys.tick_key(tenant_id, experiment_id, tick["day"], tick["t"]), "day": tick["day"],
                    "t": str(tick["t"]), "prompt": tick.get("prompt", ""), "created_at": written_at}
            if len(blob) > INLINE_LIMIT:
                object_key = keys.tick_statuses_object_key(tenant_id, experiment_id, tick["day"], tick["t"])
                self.objects.put_bytes(object_key, blob)
                item["agents_key"] = object_key
            else:
                item["agents"] = blob
            items.append(item)
            for status in tick["statuses"]:
                per_agent.setdefault(int(status["id"]), []).append(status)
        if ticks:
            first = ticks[0]
            for agent_id, statuses in per_agent.items():
                items.append({**keys.agent_statuses_key(tenant_id, experiment_id, agent_id, first["day"], first["t"]),
                              "statuses": pack(statuses)})
        items.extend(self._events(keys.AGENT_DIALOG_SK, tenant_id, experiment_id, dialogs, written_at))
        items.extend(self._events(keys.AGENT_SURVEY_SK, tenant_id, experiment_id, surveys, written_at))
        self.table.batch_put(items)
        return len(items)

    @staticmethod
    def _events(prefix: str, tenant_id: str, experiment_id: str, events: list[dict],
                written_at: str) -> Iterable[dict]:
        seen: dict[tuple[int, int, float], int] = {}
        for event in events:
            agent_id = int(event["id"])
            slot = (agent_id, event["day"], event["t"])
            seen[slot] = seen.get(slot, -1) + 1
            yield {**keys.agent_event_key(tenant_id, experiment_id, agent_id, prefix, event["day"], event["t"],
                                          seen[slot]),
                   "body": json.dumps({**event, "created_at": event.get("created_at") or written_at})}

    def append_log(self, tenant_id: str, experiment_id: str, lines: list[str]) -> None:
        if not lines:
            return
        key = keys.log_key(tenant_id, experiment_id)
        current = self.table.get(key, attributes=("lines",)) or {}
        kept = (json.loads(current.get("lines", "[]")) + lines)[-LOG_LINES:]
        self.table.put({**key, "lines": json.dumps(kept)})

    # reads --------------------------------------------------------------------------------------
    def log(self, tenant_id: str, experiment_id: str) -> list[str]:
        item = self.table.get(keys.log_key(tenant_id, experiment_id))
        return json.loads(item["lines"]) if item else []

    def timeline(self, tenant_id: str, experiment_id: str) -> list[dict]:
        items = self.table.query(keys.simulation_pk(tenant_id, experiment_id), SortRange.prefix(keys.TICK_SK),
                                 attributes=("day", "t"))
        return [{"day": int(i["day"]), "t": float(i["t"])} for i in items]

    def instant(self, tenant_id: str, experiment_id: str, day: Optional[int] = None, t: Optional[float] = None,
                *, with_agents: bool = True) -> Optional[dict]:
        """Every agent's status and the global prompt at one instant (the latest without day and t): one request.

        Without agents only the prompt and the instant are read: no blob to decompress or fetch from S3.
        """
        attributes = None if with_agents else _PROMPT_ATTRIBUTES
        if day is None or t is None:
            latest = list(self.table.query(keys.simulation_pk(tenant_id, experiment_id),
                                           SortRange.prefix(keys.TICK_SK), forward=False, limit=1,
                                           attributes=attributes))
            return self._instant(latest[0]) if latest else None
        item = self.table.get(keys.tick_key(tenant_id, experiment_id, day, t), attributes=attributes)
        return self._instant(item) if item else None

    def instants(self, tenant_id: str, experiment_id: str, *, with_agents: bool = True) -> Iterator[dict]:
        """Every instant in time order, one at a time (exports stream through this)."""
        for item in self.table.query(keys.simulation_pk(tenant_id, experiment_id), SortRange.prefix(keys.TICK_SK),
                                     page_size=STREAM_PAGE, attributes=None if with_agents else _PROMPT_ATTRIBUTES):
            yield self._instant(item)

    def _instant(self, item: dict) -> dict:
        instant = {"day": int(item["day"]), "t": float(item["t"]), "prompt": item.get("prompt", ""),
                   "created_at": item.get("created_at")}
        if "agents_key" in item:
            instant["statuses"] = unpack(self.objects.get(item["agents_key"]))
        elif "agents" in item:
            instant["statuses"] = unpack(item["agents"])
        return instant

    def profiles(self, tenant_id: str, experiment_id: str) -> list[dict]:
        items = self.table.query(keys.simulation_pk(tenant_id, experiment_id), SortRange.prefix(keys.PROFILE_SK))
        return [json.loads(i["body"]) for i in items]

    def profile(self, tenant_id: str, experiment_id: str, agent_id: int) -> Optional[dict]:
        item = self.table.get(keys.profile_key(tenant_id, experiment_id, agent_id))
        return json.loads(item["body"]) if item else None

    def agent_statuses(self, tenant_id: str, experiment_id: str, agent_id: int) -> list[dict]:
        """One agent's statuses over the whole run, in time order: one query."""
        items = self.table.query(keys.agent_pk(tenant_id, experiment_id, agent_id),
                                 SortRange.prefix(keys.AGENT_STATUS_SK))
        return [status for i in items for status in unpack(i["statuses"])]

    def agent_dialogs(self, tenant_id: str, experiment_id: str, agent_id: int) -> list[dict]:
        return self._agent_events(tenant_id, experiment_id, agent_id, keys.AGENT_DIALOG_SK)

    def agent_surveys(self, tenant_id: str, experiment_id: str, agent_id: int) -> list[dict]:
        return self._agent_events(tenant_id, experiment_id, agent_id, keys.AGENT_SURVEY_SK)

    def _agent_events(self, tenant_id: str, experiment_id: str, agent_id: int, prefix: str) -> list[dict]:
        items = self.table.query(keys.agent_pk(tenant_id, experiment_id, agent_id), SortRange.prefix(prefix))
        return [json.loads(i["body"]) for i in items]

    def delete_all(self, tenant_id: str, experiment_id: str, agent_ids: Iterable[int]) -> int:
        """Remove every item of the simulation: its own partition, its inbox and each agent's. Returns the count."""
        partitions = [keys.simulation_pk(tenant_id, experiment_id), keys.inbox_pk(tenant_id, experiment_id)]
        partitions += [keys.agent_pk(tenant_id, experiment_id, a) for a in agent_ids]
        removed = 0
        for pk in partitions:
            found = [{"pk": i["pk"], "sk": i["sk"]} for i in self.table.query(pk, attributes=("pk", "sk"))]
            self.table.batch_delete(found)
            removed += len(found)
        return removed

    # inbox: messages and surveys queued for a running agent ---------------------------------------
    def enqueue(self, tenant_id: str, experiment_id: str, kind: str, body: dict) -> str:
        message_id = new_id()
        self.table.put({**keys.inbox_key(tenant_id, experiment_id, message_id), "message_id": message_id,
                        "kind": kind, "body": json.dumps(body), "processed": False})
        return message_id

    def pending(self, tenant_id: str, experiment_id: str) -> list[dict]:
        items = self.table.query(keys.inbox_pk(tenant_id, experiment_id), SortRange.prefix(keys.INBOX_SK),
                                 filter=Condition.equals("processed", False), consistent=True)
        return [{"id": i["message_id"], "kind": i["kind"], **json.loads(i["body"])} for i in items]

    def mark_processed(self, tenant_id: str, experiment_id: str, message_ids: list[str]) -> None:
        for message_id in message_ids:
            self.table.update(keys.inbox_key(tenant_id, experiment_id, message_id), Update().set("processed", True))
