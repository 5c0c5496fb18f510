"""Small real AgentSociety maps (`city.map.v2.Map`), built with pycityproto's own classes."""
from __future__ import annotations

from typing import Optional

from pycityproto.city.geo.v2.geo_pb2 import XYPosition
from pycityproto.city.map.v2.map_pb2 import AOI_TYPE_OTHER, Aoi, Header, Map, Poi

AOI_START_ID = 500_000_000  # mosstool's id ranges
POI_START_ID = 700_000_000
PROJECTION = "+proj=tmerc +lat_0=39.9 +lon_0=116.4"  # x/y are metres east and north of (116.4, 39.9)
# (urban land use, x, y) of square blocks 200 m wide
BLOCKS = [("R", 0, 0), ("R2", 600, 0), ("B29", 300, 500), ("B1", 300, -200), ("A3", -500, 400),
          ("G1", -400, -400), ("A5", 900, 600)]


def square(x0: float, y0: float, side: float) -> list[XYPosition]:
    """A closed ring, the first point repeated at the end, as mosstool writes polygons."""
    corners = [(x0, y0), (x0 + side, y0), (x0 + side, y0 + side), (x0, y0 + side), (x0, y0)]
    return [XYPosition(x=x, y=y) for x, y in corners]


def city(blocks: Optional[list[tuple[str, float, float]]] = None, *, projection: str = PROJECTION,
         with_poi: bool = True, name: str = "pb town") -> Map:
    """Polygon AOIs of the given land uses, a bus-stop point AOI and a restaurant POI in the first shop block."""
    m = Map()
    m.header.CopyFrom(Header(name=name, date="2025-01-01", projection=projection))
    for i, (land_use, x0, y0) in enumerate(blocks if blocks is not None else BLOCKS):
        aoi = m.aois.add()
        aoi.id = AOI_START_ID + i
        aoi.name = f"block {land_use} {i}"
        aoi.type = AOI_TYPE_OTHER
        aoi.positions.extend(square(x0, y0, 200))
        aoi.area = 200.0 * 200.0
        aoi.urban_land_use = land_use
    stop = Aoi(id=AOI_START_ID + 99, name="bus stop", type=AOI_TYPE_OTHER, positions=[XYPosition(x=-900, y=-900)],
               urban_land_use="S4")
    m.aois.append(stop)
    if with_poi:
        shop = next((a for a in m.aois if a.urban_land_use.startswith("B1")), m.aois[0])
        m.pois.append(Poi(id=POI_START_ID, name="noodle shop", category="amenity|restaurant",
                          position=XYPosition(x=shop.positions[0].x + 50, y=shop.positions[0].y + 50), aoi_id=shop.id))
        shop.poi_ids.append(POI_START_ID)
    xs = [p.x for a in m.aois for p in a.positions]
    ys = [p.y for a in m.aois for p in a.positions]
    m.header.west, m.header.east, m.header.south, m.header.north = min(xs), max(xs), min(ys), max(ys)
    return m


def city_bytes(**options) -> bytes:
    return city(**options).SerializeToString()
