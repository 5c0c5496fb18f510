"""Map files as the engine reads them: Agora's JSON map format."""
from __future__ import annotations

import json

from chalicelib.sim.spec import MapData


def parse_map(raw: bytes) -> MapData:
    """The map in a map file; a ValueError says why the file is not one."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"not a JSON map: {exc}") from exc
    return MapData.model_validate(data)
