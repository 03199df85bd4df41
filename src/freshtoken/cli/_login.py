"""`freshtoken login`: log in once as a user and store the refresh token it yields."""

from __future__ import annotations

import click

from freshtoken._errors import ConfigurationError, FreshtokenError, LoginError
from freshtoken.cli._common import fail, run
from freshtoken.cli._formats import mask_on_github


def _say(text: str) -> None:
    click.echo(text, err=True)


@click.command()
@click.option(
    "--device",
    is_flag=True,
    help="The device authorization grant (RFC 8628): approve on any other device, for "
    "machines without a browser.",
)
@click.option(
    "--no-browser",
    is_flag=True,
    help="Print the URL on standard error instead of opening a browser, then wait for the "
    "redirect.",
)
@click.option(
    "--print",
    "print_token",
    is_flag=True,
    help="Write the refresh token to standard output instead of the store, to seed a CI "
    "secret (on GitHub Actions an ::add-mask:: line on standard error comes first).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    metavar="S",
    help="Seconds to wait for the login to be finished.",
)
@click.pass_context
def login(
    ctx: click.Context, device: bool, no_browser: bool, print_token: bool, timeout: float
) -> None:
    """Log in as a user once; the refresh token goes into the store for this client.

    The authorization-code grant with PKCE, redirected to a listener on 127.0.0.1 (register
    http://127.0.0.1/callback, with FRESHTOKEN_REDIRECT_PORT when the server wants the port
    too, or FRESHTOKEN_REDIRECT_URI for the exact URI registered), or with --device the device
    grant. Scopes come from FRESHTOKEN_SCOPE: add offline_access where the server issues
    refresh tokens only for it (an OpenID provider is then asked for consent:
    FRESHTOKEN_PROMPT overrides it).

    \b
    Examples:
      freshtoken login
      freshtoken login --device --print | gh secret set FRESHTOKEN_REFRESH_TOKEN
    """
    try:
        _login(ctx, device, no_browser, print_token, timeout)
    except FreshtokenError as exc:
        fail(exc)


def login_prompt(setting: str | None, scope: tuple[str, ...], openid: bool) -> str | None:
    """The `prompt` of the authorization request: the setting (`none`: send none), else
    `consent` when offline_access is asked of an OpenID provider, which drops offline_access
    (and issues no refresh token) without it (OpenID Connect Core §11)."""
    if setting:
        return None if setting.strip() == "none" else setting.strip()
    if "offline_access" in scope and (openid or "openid" in scope):
        return "consent"
    return None


def _login(
    ctx: click.Context, device: bool, no_browser: bool, print_token: bool, timeout: float
) -> None:
    from freshtoken._clock import SYSTEM_CLOCK
    from freshtoken.oauth._login import browser_login, poll_device_login, start_device_login
    from freshtoken.provider._endpoints import check_url

    settings = run(ctx).settings()
    shared = (settings.store or "").startswith(("redis://", "rediss://", "redis+", "rediss+"))
    if settings.auth_method == "none" and shared and not settings.login:
        # A public client has no credential in the cache key: two people's logins for the
        # same client on one shared store would take the same entry, each replacing the other.
        raise ConfigurationError(
            "a public client's login on a shared store needs a login label",
            hint=f"Set {settings.label('login')} to who you are (your user name or e-mail): it "
            "is part of the cache key, so that your login is kept apart from everyone else's "
            "for this client; set it the same wherever this login's tokens are used.",
        )
    broker = run(ctx).broker(settings)
    deadline = SYSTEM_CLOCK.monotonic() + timeout
    found = broker.client.endpoints()
    key = "device_authorization_url" if device else "authorization_url"
    url = getattr(settings, key) or getattr(found, key)
    if not url:
        where = "device_authorization_endpoint" if device else "authorization_endpoint"
        raise ConfigurationError(
            f"no {'device ' if device else ''}authorization endpoint is known for this server",
            hint=f"Set {settings.label(key)} to it (the server's discovery document names no "
            f"{where}, or no issuer is configured)"
            + ("; or log in with the browser (without --device)." if device else "."),
        )
    check_url(url, settings.label(key) if getattr(settings, key) else f"discovered {key}")
    if device:
        started = start_device_login(broker.client, url, settings.scope)
        _say(
            f"To log in, open {started.verification_uri} and enter the code "
            f"{started.user_code}"
            + (
                f"\n(or open {started.verification_uri_complete})"
                if started.verification_uri_complete
                else ""
            )
        )
        token = poll_device_login(broker.client, started, deadline)
    else:

        def show(address: str) -> None:
            if not no_browser:
                import webbrowser

                if webbrowser.open(address):
                    _say("A browser was opened to log in; if nothing appeared, open:")
                    _say(address)
                    return
            _say(f"Open this URL in a browser to log in (waiting up to {timeout:g} s):")
            _say(address)

        token = browser_login(
            broker.client,
            url,
            settings.scope,
            show=show,
            timeout=timeout,
            port=settings.redirect_port or 0,
            redirect_uri=settings.redirect_uri,
            prompt=login_prompt(settings.prompt, settings.scope, found.openid),
            on_ignored=lambda why: _say(f"freshtoken: ignored {why}; still waiting"),
        )
    if not token.refresh_token:
        raise LoginError(
            "the login succeeded but the server issued no refresh token",
            error="no_refresh_token",
            hint="Ask for the scope that grants one where the server needs it (offline_access "
            "for Okta, Entra ID, Auth0 and Keycloak offline tokens) in FRESHTOKEN_SCOPE, and "
            "allow refresh tokens on the client. An OpenID provider grants offline_access only "
            "with consent: unset FRESHTOKEN_PROMPT, or set it to consent.",
        )
    if not print_token:
        broker.seed_refresh_token(token.refresh_token)
        _say("logged in; the refresh token is stored for this client and spent on the next mint")
        return
    # Printed instead of stored: a refresh token that rotates must have one holder, or the
    # second to present it sets off reuse detection and the server revokes the whole login.
    # On GitHub Actions the mask goes first, on standard error, read by the runner before the
    # token is written: standard output stays the token alone, for `gh secret set`.
    mask_on_github(token.refresh_token)
    click.echo(token.refresh_token)
    _say("logged in; the refresh token was written to standard output and not stored here")
