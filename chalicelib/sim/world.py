"""The map as the engine uses it: areas by kind, distances, nearest places, the default city."""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from chalicelib.sim.spec import Aoi, MapData

DEFAULT_CITY_PATH = Path(__file__).parent / "data" / "default_city.json"
KM_PER_DEGREE = 111.32
TRAVEL_KMH = 18.0  # a mix of walking, cycling, buses and cars in town
NEAREST_CHOICES = 3  # agents pick among the few nearest places of a kind, not always the very nearest
KIND_WORDS = {"home": ("home", "homes"), "work": ("workplace", "workplaces"), "shop": ("shop", "shops"),
              "leisure": ("leisure place", "leisure places"), "school": ("school", "schools"),
              "hospital": ("hospital", "hospitals"), "other": ("other place", "other places")}


@lru_cache(maxsize=1)
def _default_city_text() -> str:
    return DEFAULT_CITY_PATH.read_text(encoding="utf-8")


def load_default_city() -> MapData:
    """The small city shipped with Agora (about 40 areas)."""
    return MapData.model_validate(json.loads(_default_city_text()))


class World:
    """Read-only view of a MapData with cached nearest-place lookups."""

    def __init__(self, map_data: MapData):
        self.name = map_data.name
        # sorted by id so every lookup is independent of the file's order
        self.aois: list[Aoi] = sorted(map_data.aois, key=lambda a: a.id)
        self.by_id: dict[int, Aoi] = {a.id: a for a in self.aois}
        self.all_ids = [a.id for a in self.aois]
        self.by_kind: dict[str, list[int]] = {}
        for a in self.aois:
            self.by_kind.setdefault(a.kind, []).append(a.id)
        lat0 = sum(a.lat for a in self.aois) / len(self.aois)
        self._lng_km = KM_PER_DEGREE * math.cos(math.radians(lat0))  # flat-earth is fine within a city
        self._nearest: dict[tuple[int, str], list[int]] = {}

    def has(self, kind: str) -> bool:
        return kind in self.by_kind

    def ids(self, kind: str) -> list[int]:
        """The places of a kind. A map with no homes or no workplaces (AgentSociety's maps often say
        nothing of land use) lends them all its areas, as AgentSociety draws homes and jobs from all AOIs."""
        found = self.by_kind.get(kind, [])
        if not found and kind in ("home", "work"):
            return self.all_ids
        return found

    def distance_km(self, a: int, b: int) -> float:
        x, y = self.by_id[a], self.by_id[b]
        return math.hypot((x.lng - y.lng) * self._lng_km, (x.lat - y.lat) * KM_PER_DEGREE)

    def travel_ticks(self, a: int, b: int, tick_seconds: int, speed_kmh: float = TRAVEL_KMH) -> int:
        if a == b:
            return 0
        km_per_tick = speed_kmh * tick_seconds / 3600
        return max(1, math.ceil(self.distance_km(a, b) / km_per_tick))

    def nearest(self, origin: int, kind: str, limit: int = NEAREST_CHOICES) -> list[int]:
        """Up to `limit` places of a kind, nearest first (ties by id); each ranking computed once."""
        key = (origin, kind)
        found = self._nearest.get(key)
        if found is None or (len(found) < limit and len(found) < len(self.ids(kind))):
            found = sorted(self.ids(kind), key=lambda i: (self.distance_km(origin, i), i))[:max(limit, NEAREST_CHOICES)]
            self._nearest[key] = found
        return found[:limit]

    def position(self, origin: int, dest: int, progress: float) -> tuple[float, float]:
        a, b = self.by_id[origin], self.by_id[dest]
        return (round(a.lng + (b.lng - a.lng) * progress, 6), round(a.lat + (b.lat - a.lat) * progress, 6))

    def describe(self) -> str:
        """A plain description of the city, the global prompt before any intervention."""
        counts = ", ".join(f"{len(self.ids(kind))} {KIND_WORDS[kind][len(self.ids(kind)) != 1]}"
                           for kind in KIND_WORDS if self.has(kind))
        return (f"You live in {self.name}, a small city with {counts}. People work on weekdays, shop and "
                f"meet friends in their free time. The economy is stable, prices are normal and the weather is mild.")
