"""The endpoints of one authorization server, and the rule for which URLs are safe."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from freshtoken._errors import ConfigurationError
from freshtoken._record import record, replace, uncompared
from freshtoken._urls import normal_host, normal_url, split_url
from freshtoken.provider._presets import Preset, preset_of


@record
class Endpoints:
    """Token endpoint and, where known, the others a tool may need."""

    token_url: str
    issuer: str | None = None
    revocation_url: str | None = None
    introspection_url: str | None = None
    authorization_url: str | None = None
    device_authorization_url: str | None = None
    api_base_url: str | None = None
    region: str | None = None
    #: The provider preset in use (provider/_presets.py): set by a region, or the setting.
    provider: str | None = None
    #: A discovery document says this is an OpenID provider (OpenID Connect Discovery fields).
    openid: bool = False
    #: What the discovery documents say of the server, the first to say each wins (`FACTS`:
    #: lists such as `grant_types_supported`, and flags); empty: no document was read.
    metadata: tuple[tuple[str, tuple[str, ...] | bool], ...] = ()
    #: (field, URL, the document that named it): the discovery document's
    #: `mtls_endpoint_aliases` (RFC 8705 §5), for a client using mutual TLS.
    mtls_aliases: tuple[tuple[str, str, str], ...] = ()
    #: (field, where its URL came from): a setting, a discovery document's URL or a provider
    #: preset; `freshtoken doctor` shows them.
    sources: tuple[tuple[str, str], ...] = uncompared(())

    @property
    def preset(self) -> Preset | None:
        """The provider preset in use (a region selects the regional one), else None."""
        return preset_of(self.provider, self.region)

    @property
    def self_revoke_url(self) -> str | None:
        """Where a preset without an RFC 7009 endpoint has an access token revoke itself with
        `DELETE`, sent with it as the bearer (docs/genesys.md)."""
        preset = self.preset
        if preset and preset.self_revoke_path and self.api_base_url:
            return self.api_base_url.rstrip("/") + preset.self_revoke_path
        return None

    def revocation(self) -> tuple[str, str] | None:
        """How tokens are revoked here and where that came from; None when no way is known."""
        if self.revocation_url:
            return self.revocation_url, self.source("revocation_url") or "configuration"
        if (url := self.self_revoke_url) and (preset := self.preset):
            return f"DELETE {url} (access tokens only)", f"the {preset.title} preset"
        return None

    def listed(self, name: str) -> tuple[str, ...] | None:
        """The list a discovery document gave as `name` (None: no document lists it)."""
        value = dict(self.metadata).get(name)
        return value if isinstance(value, tuple) else None

    def source(self, name: str) -> str | None:
        """Where the URL in field `name` (`token_url`, `revocation_url`, ...) came from."""
        return dict(self.sources).get(name)

    def over_mtls(self) -> Endpoints:
        """These endpoints as a client using mutual TLS calls them: RFC 8705 §5 says it uses
        the `mtls_endpoint_aliases` where the metadata gives them."""
        aliases = {
            name: (url, f"mtls_endpoint_aliases in {doc}") for name, url, doc in self.mtls_aliases
        }
        return self.pinned(aliases)

    def pinned(self, urls: Mapping[str, tuple[str, str]]) -> Endpoints:
        """These endpoints with `urls` (field -> (URL, where it was set)) set over them: a
        setting wins over what discovery found."""
        if not urls:
            return self
        kept = tuple((name, src) for name, src in self.sources if name not in urls)
        changes: dict[str, Any] = {name: url for name, (url, _src) in urls.items()}
        return replace(
            self,
            sources=kept + tuple((name, src) for name, (_url, src) in urls.items()),
            **changes,
        )


# Plain http goes only to these (and to `*.localhost` names that resolve to loopback): the
# HTTP clients connect to exactly these names directly, never through HTTP(S)_PROXY.
_DIRECT = ("127.0.0.1", "::1", "localhost")


def _resolves_to_loopback(host: str) -> bool:
    """A `*.localhost` name counts only when every address it resolves to is loopback (the
    resolver, not the name, decides where a connection goes)."""
    import socket  # only here: 3 ms (selectors, enum) that the command line's cache hit skips

    try:
        found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in found
    )


def is_loopback_host(host: str) -> bool:
    host = normal_host(host)
    if host == "localhost":
        return True
    if host.endswith(".localhost"):
        return _resolves_to_loopback(host)
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cleartext_allowed(host: str) -> bool:
    """Plain http is allowed to this host: this machine, reached without a proxy."""
    bare = normal_host(host)
    return (bare in _DIRECT or bare.endswith(".localhost")) and is_loopback_host(bare)


def check_url(url: str, setting: str) -> str:
    """`url` with its host normalised (the form to use from then on); a URL that is malformed,
    or plain http to anything but this machine, is refused."""
    url = normal_url(url, setting)
    parts = split_url(url, setting)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{setting} is not a valid http(s) URL: {url!r}",
            hint=f"Set {setting} to a full URL such as https://login.example.com/oauth/token.",
        )
    if parts.scheme == "http" and not cleartext_allowed(parts.hostname):
        raise ConfigurationError(
            f"{setting} uses plain http to {parts.hostname}",
            hint="Credentials and tokens would cross the network unencrypted. Use https://; "
            "plain http is allowed only to this machine: 127.0.0.1, ::1, localhost, or a "
            "*.localhost name that resolves to loopback addresses only.",
        )
    return url
