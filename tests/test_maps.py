"""AgentSociety's protobuf maps (`city.map.v2.Map`): upload, validation with a reason, conversion to
places with longitude and latitude, and a simulation that runs on one."""
from __future__ import annotations

import os

import pytest
from pycityproto.city.geo.v2.geo_pb2 import XYPosition
from pycityproto.city.map.v2.map_pb2 import Map, Poi

from chalicelib.domain.simulation.maps import parse_map
from tests.conftest import auth
from tests.pb_maps import AOI_START_ID, city, city_bytes
from tests.sim_helpers import call, make_configs, post_map, upload_map
from tests.test_sim_runs import launch, wait_for_end


def test_a_pb_map_is_stored_as_agentsociety_names_it_and_a_map_config_can_use_it(client, aws):
    path = upload_map(client, content=city_bytes(), filename="beijing-small.pb")

    assert path.startswith("maps/tenant-a/") and path.endswith(".pb")
    stored = aws.client("s3").get_object(Bucket=os.environ["AGORA_BUCKET"], Key=path)["Body"].read()
    assert stored == city_bytes(), "the file is kept byte for byte"
    created = call(client, "post", "/api/map-configs", {"name": "pb town", "config": {"file_path": path}})
    assert created.status_code == 201, created.body
    assert created.json_body["data"]["config"] == {"file_path": path}


def test_conversion_places_each_aoi_at_its_centroid_in_degrees_with_its_land_use_kind():
    converted = parse_map(city_bytes(), "town.pb")

    by_id = {a.id: a for a in converted.aois}
    assert converted.name == "pb town" and len(by_id) == 8
    assert [by_id[AOI_START_ID + i].kind for i in range(7)] == [
        "home", "home", "work", "shop", "school", "leisure", "hospital"]
    assert by_id[AOI_START_ID + 99].kind == "other", "a bus stop (S4) is neither home nor work"
    home = by_id[AOI_START_ID]  # the block from (0, 0) to (200, 200): centroid 100 m east and north
    # 100 m are about 1/853.9 of a degree of longitude and 1/1110.5 of latitude there (within a metre)
    assert home.lng == pytest.approx(116.4 + 100 / 85_396, abs=1e-5)
    assert home.lat == pytest.approx(39.9 + 100 / 111_050, abs=1e-5)
    stop = by_id[AOI_START_ID + 99]  # a point AOI stands at its one position
    assert stop.lng < 116.4 and stop.lat < 39.9


def test_an_aoi_without_land_use_takes_the_kind_of_its_pois_and_a_map_without_homes_lends_all_areas():
    m = city([("", 0, 0), ("", 400, 0)], with_poi=False)
    for aoi in m.aois:
        aoi.ClearField("urban_land_use")
    m.pois.append(Poi(id=700_000_001, category="leisure|park", position=XYPosition(x=10, y=10), aoi_id=AOI_START_ID))
    converted = parse_map(m.SerializeToString(), "m.pb")
    assert {a.id: a.kind for a in converted.aois}[AOI_START_ID] == "leisure"

    from chalicelib.sim.world import World

    world = World(converted)
    assert set(world.ids("home")) == {a.id for a in converted.aois}, "AgentSociety draws homes from every AOI"


def broken_maps() -> dict[str, tuple[bytes, str]]:
    no_projection = city()
    no_projection.header.projection = ""
    lambert = city(projection="+proj=lcc +lat_1=30 +lat_2=60")
    no_aois = city()
    del no_aois.aois[:]
    del no_aois.pois[:]
    twice = city()
    twice.aois[1].id = twice.aois[0].id
    thin = city()
    del thin.aois[0].positions[2:]
    lost_poi = city()
    lost_poi.pois[0].aoi_id = 123
    far = city()
    far.aois[-1].positions[0].x = 5_000_000  # the bus stop, 5,000 km east of the town
    return {
        "random bytes": (os.urandom(4096), "noise.pb"),
        "a JSON document called .pb": (b'{"aois": []}', "map.pb"),
        "an empty file": (b"", "empty.pb"),
        "foreign protobuf bytes": (b"\x08\x01", "foreign.pb"),
        "half a map": (city_bytes()[:300], "half.pb"),
        "a header without a projection": (no_projection.SerializeToString(), "x.pb"),
        "a projection other than tmerc/utm": (lambert.SerializeToString(), "x.pb"),
        "no AOIs": (no_aois.SerializeToString(), "x.pb"),
        "duplicate AOI ids": (twice.SerializeToString(), "x.pb"),
        "a polygon of two points": (thin.SerializeToString(), "x.pb"),
        "a POI of an AOI the map lacks": (lost_poi.SerializeToString(), "x.pb"),
        "an extent of thousands of km": (far.SerializeToString(), "x.pb"),
        "another file type": (city_bytes(), "map.zip"),
    }


def test_unusable_map_files_are_400_with_the_reason_and_store_nothing(client, aws, subtests):
    for case, (content, filename) in broken_maps().items():
        with subtests.test(case):
            response = post_map(client, content, filename)
            assert response.status_code == 400, response.body
            assert isinstance(response.json_body["detail"], str) and response.json_body["detail"]
    listed = aws.client("s3").list_objects_v2(Bucket=os.environ["AGORA_BUCKET"], Prefix="maps/tenant-a/")
    assert listed.get("KeyCount", 0) == 0


def test_a_simulation_runs_on_a_pb_map_and_places_citizens_on_it(sim_client):
    refs = make_configs(sim_client, agents=12, workflow=[{"type": "step", "steps": 6}],
                        map_file=(city_bytes(), "town.pb"))
    exp_id = launch(sim_client, refs).json_body["data"]["id"]

    exp = wait_for_end(sim_client, exp_id)

    assert exp.status == 2, exp.error
    statuses = call(sim_client, "get", f"/api/experiments/{exp_id}/agents/-/status").json_body["data"]
    assert len(statuses) == 12
    aoi_ids = {a.id for a in Map.FromString(city_bytes()).aois}
    assert all(s["parent_id"] in aoi_ids or s["parent_id"] is None for s in statuses)
    assert all(116.38 < s["lng"] < 116.42 and 39.88 < s["lat"] < 39.92 for s in statuses)
    profiles = call(sim_client, "get", f"/api/experiments/{exp_id}/agents/-/profile",
                    headers=auth()).json_body["data"]
    homes = {p["profile"]["home"] for p in profiles}
    assert homes <= {AOI_START_ID, AOI_START_ID + 1}, "homes are the residential (R) blocks"
