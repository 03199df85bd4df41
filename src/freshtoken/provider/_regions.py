"""A preset's region resolved to its hosts, and the endpoints a preset knows without
discovery (its table is provider/_presets.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

from freshtoken._errors import ConfigurationError
from freshtoken._record import record, uncompared
from freshtoken.provider._presets import REGIONAL, Preset


@record
class Region:
    """A region of a preset: its key, its domain, and the URLs on it."""

    key: str
    domain: str
    preset: Preset = uncompared(REGIONAL)

    def __repr__(self) -> str:
        return f"Region(key={self.key!r}, domain={self.domain!r})"

    def url(self, name: str) -> str | None:
        """The URL of Endpoints field `name` in this region, where the preset knows it."""
        template = self.preset.urls.get(name)
        return template.format(domain=self.domain) if template else None

    @property
    def token_url(self) -> str:
        return self.url("token_url") or ""

    @property
    def api_base_url(self) -> str:
        return self.url("api_base_url") or ""

    @property
    def authorization_url(self) -> str | None:
        return self.url("authorization_url")


def resolve_region(preset: Preset, value: str) -> Region:
    """Resolve a region key (`eu_west_1`, `eu-west-1`), a domain or an API/login URL."""
    text = value.strip().lower()
    key = text.replace("-", "_")
    if key in preset.regions:
        return Region(key, preset.regions[key], preset)
    host = urlsplit(text).hostname if "://" in text else text.rstrip("/")
    for prefix in preset.host_prefixes:
        if host and host.startswith(prefix):
            host = host[len(prefix) :]
    for key, domain in preset.regions.items():
        if host == domain:
            return Region(key, domain, preset)
    valid = ", ".join(sorted(preset.regions))
    example = Region(preset.example_region, preset.regions.get(preset.example_region, ""), preset)
    raise ConfigurationError(
        f"unknown {preset.title} region {value!r}",
        hint=f"Use one of: {valid} (hyphens also accepted), a domain such as {example.domain}, "
        f"or an API URL such as {example.api_base_url}.",
    )


def preset_urls(
    preset: Preset, region: Region | None, token_url: str | None
) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """The endpoint URLs the preset gives beyond the API base, and where each came from: the
    region's hosts, or paths on the origin of a token URL that was set (the preset at any
    address)."""
    if token_url:
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(token_url))
        found = {name: origin + path for name, path in preset.login_paths.items()}
        where = f"the {preset.title} preset (on the token URL's host)"
    elif region is not None:
        urls = {name: region.url(name) for name in preset.urls if name != "api_base_url"}
        found = {name: url for name, url in urls.items() if url}
        where = f"the {preset.title} preset (region {region.key})"
    else:
        return {}, ()
    return found, tuple((name, where) for name in found)


__all__ = ["Region", "preset_urls", "resolve_region"]
