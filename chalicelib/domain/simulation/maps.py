"""Map files as the engine reads them: AgentSociety's protobuf maps (`city.map.v2.Map`) and Agora's JSON maps.

A `.pb` map holds areas of interest (AOIs) and points of interest (POIs) in projected metres; the
header's PROJ string says how to turn them into longitude and latitude. Each AOI becomes a place
of the engine at its centroid, with a kind (home, work, shop, ...) read from its `urban_land_use`
(GB 50137 codes, as mosstool writes them), else its deprecated `land_use`, else the majority of
its POIs' categories. A map that parses but cannot be simulated (no projection, no AOIs, broken
geometry) is refused with the reason, at upload, not when a run starts.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Iterable

from chalicelib.sim.projection import UnsupportedProjection, parse_projection
from chalicelib.sim.spec import MapData

MAX_EXTENT_METRES = 2_000_000  # a city map larger than this across is a broken file, not a city
# longest matching prefix of an AOI's urban_land_use -> the engine's kind (mosstool's OSM -> GB 50137 table)
LAND_USE_KINDS = {"R": "home", "M": "work", "A": "work", "A1": "work", "A2": "leisure", "A3": "school",
                  "A4": "leisure", "A5": "hospital", "B": "shop", "B1": "shop", "B13": "leisure", "B2": "work",
                  "B29": "work", "B3": "leisure", "G": "leisure", "G1": "leisure", "G2": "other", "S": "other",
                  "U": "other", "W": "other", "H": "other", "E": "other"}
DEPRECATED_LAND_USE = {7: "home", 5: "shop", 6: "work"}  # the Map proto's LandUseType; anything else: other
POI_KINDS = {
    "leisure": ("restaurant", "cafe", "bar", "pub", "fast_food", "food_court", "ice_cream", "park", "garden",
                "playground", "sports_centre", "stadium", "pitch", "swimming_pool", "fitness_centre", "cinema",
                "theatre", "museum", "arts_centre", "library", "nightclub", "zoo", "attraction"),
    "school": ("school", "university", "college", "kindergarten", "education"),
    "hospital": ("hospital", "clinic", "doctors", "dentist", "pharmacy"),
    "shop": ("marketplace", "supermarket", "retail", "kiosk", "commercial", "mall", "shop", "convenience"),
    "work": ("office", "industrial", "warehouse", "company"),
    "home": ("apartments", "house", "residential", "dormitory"),
}
POI_CODE_KINDS = {"13": "shop", "24": "school", "10": "leisure", "16": "leisure", "18": "leisure", "20": "hospital",
                  "22": "work", "28": "home"}  # Tencent Maps' six-digit categories, by their first two digits
_POI_WORDS = {word: kind for kind, words in POI_KINDS.items() for word in words}


def parse_map(raw: bytes, filename: str = "") -> MapData:
    """The map in a map file; a ValueError says why the file is not a usable map.

    `.pb` files are protobuf maps, `.json` files Agora's own format; without a telling name the
    content decides (a JSON map starts with `{`).
    """
    name = filename.lower()
    if name.endswith(".pb"):
        return parse_protobuf_map(raw)
    if name.endswith(".json") or raw.lstrip()[:1] == b"{":
        return parse_json_map(raw)
    return parse_protobuf_map(raw)


def parse_json_map(raw: bytes) -> MapData:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not a JSON map: {exc}") from exc
    return MapData.model_validate(data)


def parse_protobuf_map(raw: bytes) -> MapData:
    from google.protobuf.message import DecodeError
    from pycityproto.city.map.v2.map_pb2 import Map

    try:
        city = Map.FromString(raw)
    except (DecodeError, RuntimeWarning) as exc:
        raise ValueError(f"not a protobuf city map (city.map.v2.Map): {exc}") from exc
    if not city.HasField("header"):
        raise ValueError("not a protobuf city map: it has no header (an empty or foreign protobuf file)")
    try:
        projection = parse_projection(city.header.projection)
    except UnsupportedProjection as exc:
        raise ValueError(f"the map's projection cannot be used: {exc}") from exc
    if not city.aois:
        raise ValueError("the map has no AOIs: citizens need areas to live and work in")
    if len(city.aois) > 100_000:
        raise ValueError(f"the map has {len(city.aois)} AOIs; at most 100,000 are supported")
    centres = _aoi_centres(city.aois)
    poi_kinds = _poi_kinds(city.pois, set(centres))
    _check_extent(list(centres.values()))
    aois = []
    for aoi in city.aois:
        x, y = centres[aoi.id]
        try:
            lng, lat = projection.to_lng_lat(x, y)
        except ValueError as exc:
            raise ValueError(f"AOI {aoi.id} cannot be placed: {exc}") from exc
        if not (-180 <= lng <= 180 and -85 <= lat <= 85):
            raise ValueError(f"AOI {aoi.id} falls at lng {lng:.4f}, lat {lat:.4f}, outside the world")
        aois.append({"id": aoi.id, "kind": aoi_kind(aoi, poi_kinds.get(aoi.id, ())), "name": aoi.name,
                     "lng": round(lng, 7), "lat": round(lat, 7)})
    return MapData.model_validate({"name": city.header.name or "city", "aois": aois})


def _aoi_centres(aois: Iterable[Any]) -> dict[int, tuple[float, float]]:
    """Each AOI's centre in projected metres: a polygon's centroid, a point AOI's one position."""
    centres: dict[int, tuple[float, float]] = {}
    for aoi in aois:
        if aoi.id in centres:
            raise ValueError(f"AOI ids must be unique: {aoi.id} appears more than once")
        points = [(p.x, p.y) for p in aoi.positions]
        if not points:
            raise ValueError(f"AOI {aoi.id} has no position")
        if not all(math.isfinite(x) and math.isfinite(y) for x, y in points):
            raise ValueError(f"AOI {aoi.id} has a coordinate that is not a finite number")
        if aoi.HasField("area") and len(set(points)) < 3:
            raise ValueError(f"AOI {aoi.id} is a polygon (it has an area) with fewer than 3 distinct points")
        centres[aoi.id] = _centroid(points) if aoi.HasField("area") else points[0]
    return centres


def _centroid(ring: list[tuple[float, float]]) -> tuple[float, float]:
    """The area centroid of a polygon ring (the shoelace formula); the mean of its points if degenerate."""
    twice_area = cx = cy = 0.0
    for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
        cross = x0 * y1 - x1 * y0
        twice_area += cross
        cx += (x0 + x1) * cross
        cy += (y0 + y1) * cross
    if abs(twice_area) < 1e-9:
        return sum(x for x, _ in ring) / len(ring), sum(y for _, y in ring) / len(ring)
    return cx / (3 * twice_area), cy / (3 * twice_area)


def _poi_kinds(pois: Iterable[Any], aoi_ids: set[int]) -> dict[int, list[str]]:
    """The kinds of each AOI's POIs; every POI needs a position and an AOI the map has."""
    kinds: dict[int, list[str]] = {}
    for poi in pois:
        if not poi.HasField("position"):
            raise ValueError(f"POI {poi.id} has no position")
        if not (math.isfinite(poi.position.x) and math.isfinite(poi.position.y)):
            raise ValueError(f"POI {poi.id} has a coordinate that is not a finite number")
        if poi.aoi_id not in aoi_ids:
            raise ValueError(f"POI {poi.id} belongs to AOI {poi.aoi_id}, which the map does not have")
        kinds.setdefault(poi.aoi_id, []).append(poi_kind(poi.category))
    return kinds


def _check_extent(points: list[tuple[float, float]]) -> None:
    xs, ys = [x for x, _ in points], [y for _, y in points]
    if max(xs) - min(xs) > MAX_EXTENT_METRES or max(ys) - min(ys) > MAX_EXTENT_METRES:
        raise ValueError(f"the map's areas spread over more than {MAX_EXTENT_METRES // 1000:,} km: "
                         "not a city (are the coordinates degrees instead of metres?)")


def poi_kind(category: str) -> str:
    """A POI category (`amenity|restaurant`, `leisure|park`, `131300`) as an engine kind."""
    word = category.rsplit("|", 1)[-1].strip().lower()
    if word.isdigit() and len(word) == 6:
        return POI_CODE_KINDS.get(word[:2], "other")
    return _POI_WORDS.get(word, "other")


def aoi_kind(aoi: Any, poi_kinds: Iterable[str]) -> str:
    """An AOI's kind: its land use, else the most common kind of its POIs, else "other"."""
    if aoi.HasField("urban_land_use") and aoi.urban_land_use:
        code = aoi.urban_land_use.strip().upper()
        for length in range(len(code), 0, -1):
            if code[:length] in LAND_USE_KINDS:
                kind = LAND_USE_KINDS[code[:length]]
                break
        else:
            kind = "other"
    elif aoi.HasField("land_use"):
        kind = DEPRECATED_LAND_USE.get(int(aoi.land_use), "other")
    else:
        kind = "other"
    if kind == "other":
        counted = Counter(k for k in poi_kinds if k != "other")
        if counted:
            kind = counted.most_common(1)[0][0]
    return kind
