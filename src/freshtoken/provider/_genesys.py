"""The Genesys Cloud preset: region -> login and API hosts."""

from __future__ import annotations

from urllib.parse import urlsplit

from freshtoken._errors import ConfigurationError
from freshtoken._record import record

# SDK region key -> domain (docs/genesys.md, "Regions").
GENESYS_REGIONS: dict[str, str] = {
    "us_east_1": "mypurecloud.com",
    "eu_west_1": "mypurecloud.ie",
    "ap_southeast_2": "mypurecloud.com.au",
    "ap_northeast_1": "mypurecloud.jp",
    "eu_central_1": "mypurecloud.de",
    "us_west_2": "usw2.pure.cloud",
    "ca_central_1": "cac1.pure.cloud",
    "ap_northeast_2": "apne2.pure.cloud",
    "eu_west_2": "euw2.pure.cloud",
    "ap_south_1": "aps1.pure.cloud",
    "us_east_2": "use2.us-gov-pure.cloud",
    "sa_east_1": "sae1.pure.cloud",
    "me_central_1": "mec1.pure.cloud",
    "ap_northeast_3": "apne3.pure.cloud",
    "eu_central_2": "euc2.pure.cloud",
    "mx_central_1": "mxc1.pure.cloud",
    "ap_southeast_1": "apse1.pure.cloud",
    "eusc_de_east_1": "edee1.eusc-pure.cloud",
}
_BY_DOMAIN = {domain: key for key, domain in GENESYS_REGIONS.items()}


@record
class GenesysRegion:
    key: str
    domain: str

    @property
    def token_url(self) -> str:
        return f"https://login.{self.domain}/oauth/token"

    @property
    def api_base_url(self) -> str:
        return f"https://api.{self.domain}"


def genesys_region(value: str) -> GenesysRegion:
    """Resolve a region key (`eu_west_1`, `eu-west-1`), a domain or an API/login URL."""
    text = value.strip().lower()
    key = text.replace("-", "_")
    if key in GENESYS_REGIONS:
        return GenesysRegion(key, GENESYS_REGIONS[key])
    host = urlsplit(text).hostname if "://" in text else text.rstrip("/")
    for prefix in ("api.", "login.", "apps."):
        if host and host.startswith(prefix):
            host = host[len(prefix) :]
    if host in _BY_DOMAIN:
        return GenesysRegion(_BY_DOMAIN[host], host)
    valid = ", ".join(sorted(GENESYS_REGIONS))
    raise ConfigurationError(
        f"unknown Genesys Cloud region {value!r}",
        hint=f"Use one of: {valid} (hyphens also accepted), a domain such as mypurecloud.ie, "
        "or an API URL such as https://api.mypurecloud.ie.",
    )
