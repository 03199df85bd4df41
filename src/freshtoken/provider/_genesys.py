"""The Genesys Cloud preset's public names: its regions, and a region resolved to its hosts
(the data is its row in provider/_presets.py)."""

from __future__ import annotations

from freshtoken.provider._presets import GENESYS
from freshtoken.provider._regions import Region, resolve_region

#: SDK region key -> domain (docs/genesys.md, "Regions").
GENESYS_REGIONS: dict[str, str] = dict(GENESYS.regions)
GenesysRegion = Region


def genesys_region(value: str) -> Region:
    """Resolve a region key (`eu_west_1`, `eu-west-1`), a domain or an API/login URL."""
    return resolve_region(GENESYS, value)


__all__ = ["GENESYS_REGIONS", "GenesysRegion", "genesys_region"]
