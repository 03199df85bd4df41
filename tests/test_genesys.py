"""The Genesys Cloud preset: pure resolution (no network reaches the real hosts here)."""

from __future__ import annotations

import pytest

from freshtoken import GENESYS_REGIONS, ConfigurationError, Settings, _build, genesys_region

EXPECTED = {
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


def test_all_eighteen_regions_are_known() -> None:
    assert GENESYS_REGIONS == EXPECTED
    assert len(GENESYS_REGIONS) == 18


def _forms(key: str, domain: str) -> list[str]:
    return [
        key,
        key.replace("_", "-"),
        key.upper().replace("_", "-"),
        domain,
        f"https://api.{domain}",
        f"https://api.{domain}/",
        f"https://login.{domain}",
    ]


FORMS = [
    (key, domain, form) for key, domain in sorted(EXPECTED.items()) for form in _forms(key, domain)
]


@pytest.mark.parametrize(("key", "domain", "form"), FORMS, ids=[f[2] for f in FORMS])
def test_every_region_in_every_form(key: str, domain: str, form: str) -> None:
    region = genesys_region(form)
    assert region.key == key
    assert region.token_url == f"https://login.{domain}/oauth/token"
    assert region.api_base_url == f"https://api.{domain}"


def test_unknown_region_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        genesys_region("eu_west_9")
    text = str(info.value)
    assert "eu_west_9" in text
    assert [key for key in EXPECTED if key not in text] == []


def test_region_setting_gives_endpoints() -> None:
    endpoints = _build.endpoints(Settings(region="eu-west-1", client_id="x"))
    assert endpoints is not None
    assert endpoints.token_url == "https://login.mypurecloud.ie/oauth/token"
    assert endpoints.api_base_url == "https://api.mypurecloud.ie"
    assert endpoints.region == "eu_west_1"
