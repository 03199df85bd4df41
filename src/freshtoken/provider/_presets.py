"""Provider presets as data: what one provider's servers are known to be without discovery.

A preset gives its hosts (per region, or at any address), its endpoints, its own revoke call,
the variables of its own tools that freshtoken reads, and the words it adds to hints. The rest
of freshtoken names no provider: it asks this table. Genesys Cloud is the one row today; a
preset for another provider is one more `Preset` in `PRESETS` (docs/genesys.md holds the facts
and their sources).

Standard library only, and nothing of freshtoken outside this package: the error hints, the
settings and the command line's cheapest path read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from freshtoken._record import record
from freshtoken.provider._variables import VARIABLES

#: An empty mapping, the default of a preset's tables (records share their defaults).
_NONE: Mapping[str, str] = MappingProxyType({})


@record
class Preset:
    """One provider's endpoints, variables and hint words."""

    #: The `provider` setting's value that selects it.
    name: str
    #: How hints and `freshtoken doctor` name it.
    title: str
    #: What it changes, for the `provider` setting's help.
    summary: str
    #: Region key -> domain; a region setting selects the preset and its hosts.
    regions: Mapping[str, str] = _NONE
    #: The region that examples and the generated docs show.
    example_region: str = ""
    #: Host prefixes a region may be given with (`api.mypurecloud.ie`).
    host_prefixes: tuple[str, ...] = ()
    #: Endpoints field -> URL template over `{domain}` (the hosts of a region).
    urls: Mapping[str, str] = _NONE
    #: Endpoints field -> path on the token URL's origin, where the preset is used at any
    #: address (a gateway, the shipped test server) rather than by region.
    login_paths: Mapping[str, str] = _NONE
    #: Path on the API base where an access token revokes itself with DELETE, sent as its own
    #: bearer (the provider has no RFC 7009 endpoint); "" where there is none.
    self_revoke_path: str = ""
    #: Its own tools' variables -> setting (FRESHTOKEN_* ones win).
    env: Mapping[str, str] = _NONE
    #: Whose variables `env` holds, for docs/configuration.md.
    env_owner: str = ""
    #: Hint slot -> its words with this preset; `slot@region` where a region is set. Templates
    #: over `{host}`, `{region}` and the slot's own fields.
    hints: Mapping[str, str] = _NONE
    #: The shipped test server's knobs (freshtoken.testing) that make it answer as this
    #: provider does: the demo's and `AuthServer`'s stand-in.
    stand_in: Mapping[str, object] = _NONE


_WRONG_REGION = (
    " Very often it is the wrong Genesys Cloud region: this request went to {where}, and an "
    "OAuth client exists only in the region of the org it was created in. Check {check}."
)

GENESYS = Preset(
    name="genesys",
    title="Genesys Cloud",
    summary="the Genesys Cloud behaviour (API upstream, revoke through DELETE /api/v2/tokens/me, "
    "error hints) at any address; set by a region. Needs token_url and api_url when no region "
    "is given.",
    # SDK region key -> domain (docs/genesys.md, "Regions").
    regions={
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
    },
    example_region="eu_west_1",
    host_prefixes=("api.", "login.", "apps."),
    urls={
        "token_url": "https://login.{domain}/oauth/token",
        "authorization_url": "https://login.{domain}/oauth/authorize",
        "api_base_url": "https://api.{domain}",
    },
    login_paths={"authorization_url": "/oauth/authorize"},
    self_revoke_path="/api/v2/tokens/me",
    env=VARIABLES["genesys"],
    env_owner="Genesys Cloud CLI / Terraform",
    hints={
        "invalid_client": _WRONG_REGION.format(
            where="{host}", check="FRESHTOKEN_TOKEN_URL and FRESHTOKEN_API_URL"
        ),
        "invalid_client@region": _WRONG_REGION.format(
            where="region {region} ({host})", check="the org's region (FRESHTOKEN_REGION)"
        ),
        "unauthorized_client": " (Genesys Cloud: Admin > Integrations > OAuth)",
        "invalid_scope": " Genesys Cloud client-credentials clients get their permissions from "
        "the roles assigned to the OAuth client, not from scopes, and there is no "
        "offline_access scope: leave FRESHTOKEN_SCOPE empty.",
        "rate_limited": " (Genesys Cloud answers HTTP 400 'rate limit exceeded')",
        "dns_error": "the token URL or the region's spelling",
        "token_lifetime": " (Genesys Cloud: the client's Token Duration, 300..172800 s).",
        "offline_access": "offline_access is not a Genesys Cloud scope and client credentials "
        "never get a refresh token; none is needed (freshtoken mints a new token before the old "
        "one expires). Remove it from FRESHTOKEN_SCOPE.",
        "no_scope_stated": " (Genesys Cloud: permissions come from the OAuth client's roles)",
        "region": " (Genesys Cloud)",
        "region@region": " (Genesys Cloud region {region})",
        "scope": " (empty for Genesys client credentials)",
        "api_host": "the Genesys API host of the region",
    },
    # Both descriptions in an error, no scope in token responses, 400 for the rate limit.
    stand_in={"error_style": "genesys", "scope_in_response": False, "rate_limit_style": "genesys"},
)

#: provider setting -> preset.
PRESETS: dict[str, Preset] = {p.name: p for p in (GENESYS,)}
#: The preset a region setting alone selects.
REGIONAL = GENESYS
#: Every preset's variables -> setting, read below FRESHTOKEN_* ones.
ALIASES: dict[str, str] = {name: key for p in PRESETS.values() for name, key in p.env.items()}
#: The prefixes of those variables (for scrubbing a child's environment).
ALIAS_PREFIXES: tuple[str, ...] = tuple(
    dict.fromkeys(name.split("_", 1)[0] + "_" for name in ALIASES)
)


def preset_of(provider: str | None, region: str | None = None) -> Preset | None:
    """The preset in use: the provider setting's, else the regional one where a region is
    set; None for a generic server."""
    if provider:
        return PRESETS.get(provider)
    return REGIONAL if region else None


def words(
    provider: str | None, region: str | None, slot: str, default: str = "", **fields: str
) -> str:
    """The preset's words for hint `slot` (formatted with `region` and `fields`), else
    `default`: a hint names a provider's own features only when its preset is in use."""
    preset = preset_of(provider, region)
    found = preset and ((region and preset.hints.get(slot + "@region")) or preset.hints.get(slot))
    return found.format(region=region or "", **fields) if found else default


__all__ = ["ALIASES", "ALIAS_PREFIXES", "PRESETS", "REGIONAL", "Preset", "preset_of", "words"]
