"""Distances on the Earth, computed in code: the store has no geo index we can rely on (DESIGN.md)."""

from __future__ import annotations

import math

from contracts.events import Location

EARTH_RADIUS_KM = 6371.0


def distance_km(a: Location, b: Location) -> float:
    """Great-circle distance (haversine), in kilometres."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))
