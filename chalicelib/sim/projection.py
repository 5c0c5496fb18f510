"""Map projections of AgentSociety's `.pb` maps: transverse Mercator (tmerc, utm), inverse only, pure Python.

AgentSociety reads a map's `header.projection` (a PROJ string) with pyproj; its maps are projected
with `+proj=tmerc` centred on the city (mosstool's default) or with UTM. This module turns such
x/y metres back into longitude and latitude without pyproj, which would cost a Lambda tens of MB
and a slow import. The series is Krüger's to n^6 (Karney 2011): sub-millimetre within a zone.
Any other projection is refused with `UnsupportedProjection`, so a map is rejected at upload
rather than misplaced.
"""
from __future__ import annotations

import math

ELLIPSOIDS = {  # name -> (semi-major axis a, inverse flattening 1/f)
    "WGS84": (6378137.0, 298.257223563),
    "GRS80": (6378137.0, 298.257222101),
    "krass": (6378245.0, 298.3),
    "intl": (6378388.0, 297.0),
    "clrk66": (6378206.4, 294.9786982),
    "bessel": (6377397.155, 299.1528128),
}
DATUMS = {"WGS84": "WGS84", "NAD83": "GRS80"}
KNOWN = {"proj", "lat_0", "lon_0", "k", "k_0", "x_0", "y_0", "zone", "south", "ellps", "datum", "a", "b", "rf",
         "f", "units", "no_defs", "type", "wktext", "approx", "towgs84"}
ETA_LIMIT = 2.623395162778  # PROJ's domain of the exact tmerc: about 16,700 km east or west


class UnsupportedProjection(ValueError):
    """The PROJ string is not a transverse Mercator this module can invert."""


def _parameters(text: str) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for token in text.split():
        if not token.startswith("+"):
            raise UnsupportedProjection(f"not a PROJ '+key=value' string: {token!r}")
        key, equals, value = token[1:].partition("=")
        if key in found:
            raise UnsupportedProjection(f"+{key} is given twice")
        found[key] = value if equals else None
    unknown = sorted(set(found) - KNOWN)
    if unknown:
        raise UnsupportedProjection(f"unsupported PROJ parameters: {', '.join('+' + k for k in unknown)}")
    return found


def _number(found: dict[str, str | None], key: str, default: float) -> float:
    if key not in found:
        return default
    text = found[key]
    try:
        value = float(text) if text is not None else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UnsupportedProjection(f"+{key} needs a finite number, got {text!r}")
    return value


def _ellipsoid(found: dict[str, str | None]) -> tuple[float, float]:
    """(a, f) of the projection's ellipsoid; a bare string means WGS84, as pyproj reads it."""
    if "a" in found:
        a = _number(found, "a", 0.0)
        if "rf" in found:
            f = 1.0 / _number(found, "rf", 0.0)
        elif "f" in found:
            f = _number(found, "f", 0.0)
        elif "b" in found:
            f = 1.0 - _number(found, "b", 0.0) / a
        else:
            raise UnsupportedProjection("+a needs +b, +rf or +f (a sphere is not supported)")
        if not (a > 0 and 0 < f < 0.01):
            raise UnsupportedProjection("the ellipsoid given by +a is implausible")
        return a, f
    name = found.get("ellps")
    if name is None and found.get("datum") is not None:
        name = DATUMS.get(found["datum"] or "")
        if name is None:
            raise UnsupportedProjection(f"+datum={found['datum']} is not supported")
    a, inverse_f = ELLIPSOIDS.get(name or "WGS84", (0.0, 0.0))
    if not a:
        raise UnsupportedProjection(f"+ellps={name} is not supported")
    return a, 1.0 / inverse_f


class TransverseMercator:
    """x/y metres of one transverse Mercator projection -> (lng, lat) degrees."""

    def __init__(self, a: float, f: float, lat_0: float = 0.0, lon_0: float = 0.0, k_0: float = 1.0,
                 x_0: float = 0.0, y_0: float = 0.0) -> None:
        self.lon_0, self.x_0, self.y_0 = lon_0, x_0, y_0
        n = f / (2 - f)
        n2, n3 = n * n, n ** 3
        n4, n5, n6 = n ** 4, n ** 5, n ** 6
        rectifying = a / (1 + n) * (1 + n2 / 4 + n4 / 64 + n6 / 256)
        alpha = (n / 2 - 2 * n2 / 3 + 5 * n3 / 16 + 41 * n4 / 180 - 127 * n5 / 288 + 7891 * n6 / 37800,
                 13 * n2 / 48 - 3 * n3 / 5 + 557 * n4 / 1440 + 281 * n5 / 630 - 1983433 * n6 / 1935360,
                 61 * n3 / 240 - 103 * n4 / 140 + 15061 * n5 / 26880 + 167603 * n6 / 181440,
                 49561 * n4 / 161280 - 179 * n5 / 168 + 6601661 * n6 / 7257600,
                 34729 * n5 / 80640 - 3418889 * n6 / 1995840,
                 212378941 * n6 / 319334400)
        self._beta = (n / 2 - 2 * n2 / 3 + 37 * n3 / 96 - n4 / 360 - 81 * n5 / 512 + 96199 * n6 / 604800,
                      n2 / 48 + n3 / 15 - 437 * n4 / 1440 + 46 * n5 / 105 - 1118711 * n6 / 3870720,
                      17 * n3 / 480 - 37 * n4 / 840 - 209 * n5 / 4480 + 5569 * n6 / 90720,
                      4397 * n4 / 161280 - 11 * n5 / 504 - 830251 * n6 / 7257600,
                      4583 * n5 / 161280 - 108847 * n6 / 3991680,
                      20648693 * n6 / 638668800)
        self._e2 = f * (2 - f)
        self._e = math.sqrt(self._e2)
        self._scale = k_0 * rectifying
        self._xi_0 = self._conformal_xi(math.radians(lat_0), alpha)

    def _conformal_xi(self, phi: float, alpha: tuple[float, ...]) -> float:
        """The northing (in units of the rectifying radius) of latitude `phi` on the central meridian."""
        e = self._e
        t = math.sinh(math.atanh(math.sin(phi)) - e * math.atanh(e * math.sin(phi)))
        xi_p = math.atan2(t, 1.0)
        return xi_p + sum(aj * math.sin(2 * j * xi_p) for j, aj in enumerate(alpha, 1))

    def _tau(self, taup: float) -> float:
        e, e2 = self._e, self._e2
        tau = taup
        for _ in range(8):
            s1 = math.sqrt(1 + tau * tau)
            sig = math.sinh(e * math.atanh(e * tau / s1))
            taupa = tau * math.sqrt(1 + sig * sig) - sig * s1
            step = (taup - taupa) / ((1 - e2) * math.sqrt(1 + taupa * taupa) * s1) * (1 + (1 - e2) * tau * tau)
            tau += step
            if abs(step) < 1e-14 * max(1.0, abs(tau)):
                break
        return tau

    def to_lng_lat(self, x: float, y: float) -> tuple[float, float]:
        """(lng, lat) of projected metres; a ValueError for points no map of this projection can hold."""
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError("coordinates must be finite")
        scale = self._scale
        xi = (y - self.y_0) / scale + self._xi_0
        eta = (x - self.x_0) / scale
        if abs(eta) > ETA_LIMIT or abs(xi) > math.pi:
            raise ValueError("coordinates lie outside the projection's domain")
        xi_p, eta_p = xi, eta
        for j, bj in enumerate(self._beta, 1):
            xi_p -= bj * math.sin(2 * j * xi) * math.cosh(2 * j * eta)
            eta_p -= bj * math.cos(2 * j * xi) * math.sinh(2 * j * eta)
        sinh_eta, cos_xi = math.sinh(eta_p), math.cos(xi_p)
        lat = math.degrees(math.atan(self._tau(math.sin(xi_p) / math.hypot(sinh_eta, cos_xi))))
        lng = (self.lon_0 + math.degrees(math.atan2(sinh_eta, cos_xi)) + 180.0) % 360.0 - 180.0
        return lng, lat


def parse_projection(text: str) -> TransverseMercator:
    """A map header's PROJ string: `+proj=tmerc [+lat_0 +lon_0 +k +x_0 +y_0]` or `+proj=utm +zone=N [+south]`."""
    if not text or not text.strip():
        raise UnsupportedProjection("the map header has no projection")
    found = _parameters(text.strip())
    towgs84 = found.get("towgs84")
    if towgs84 is not None and any(float(v or 0) != 0.0 for v in towgs84.split(",")):
        raise UnsupportedProjection("+towgs84 with a datum shift is not supported")
    if found.get("units") not in (None, "m"):
        raise UnsupportedProjection("only +units=m is supported")
    a, f = _ellipsoid(found)
    kind = found.get("proj")
    if kind == "tmerc":
        if "zone" in found or "south" in found:
            raise UnsupportedProjection("+zone and +south go with +proj=utm")
        if "k" in found and "k_0" in found:
            raise UnsupportedProjection("give +k or +k_0, not both")
        lat_0, lon_0 = _number(found, "lat_0", 0.0), _number(found, "lon_0", 0.0)
        k_0 = _number(found, "k_0", _number(found, "k", 1.0))
        x_0, y_0 = _number(found, "x_0", 0.0), _number(found, "y_0", 0.0)
    elif kind == "utm":
        zone_text = found.get("zone") or ""
        if not zone_text.isdigit() or not 1 <= int(zone_text) <= 60:
            raise UnsupportedProjection("+proj=utm needs +zone from 1 to 60")
        if set(found) & {"lat_0", "lon_0", "k", "k_0", "x_0", "y_0"} or found.get("south"):
            raise UnsupportedProjection("+proj=utm takes only +zone and +south")
        lat_0, lon_0, k_0 = 0.0, int(zone_text) * 6.0 - 183.0, 0.9996
        x_0, y_0 = 500_000.0, 10_000_000.0 if "south" in found else 0.0
    else:
        raise UnsupportedProjection(f"+proj={kind} is not supported (tmerc and utm are)")
    if not (-90 <= lat_0 <= 90 and -180 <= lon_0 <= 180 and 0 < k_0 <= 2):
        raise UnsupportedProjection("+lat_0, +lon_0 or +k is out of range")
    return TransverseMercator(a, f, lat_0, lon_0, k_0, x_0, y_0)
