"""Real parts for tests: `AuthServer` (an authorization server on loopback, also
`freshtoken testserver` and the `freshtoken_server` fixture of the opt-in pytest plugin
`freshtoken.testing.pytest_plugin`), `GitHubSecrets` (a stand-in for GitHub's Actions
secrets API), `GitHubOidc` (for GitHub Actions' OIDC token endpoint), `FakeClock`, and
`StoreContract`, the test class every `TokenStore` must pass."""

from typing import TYPE_CHECKING, Any

from freshtoken.testing._clock import FakeClock
from freshtoken.testing._model import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    MALFORMED,
    Client,
    Knobs,
)
from freshtoken.testing._server import AuthServer

if TYPE_CHECKING:
    from freshtoken.testing._contract import StoreContract
    from freshtoken.testing._github import GITHUB_TEST_TOKEN, GitHubSecrets
    from freshtoken.testing._github_oidc import GitHubOidc


def __getattr__(name: str) -> Any:
    if name == "StoreContract":  # imports pytest: only for those who ask
        from freshtoken.testing._contract import StoreContract

        return StoreContract
    if name in ("GitHubSecrets", "GITHUB_TEST_TOKEN"):  # PyNaCl, only for those who ask
        from freshtoken.testing import _github

        return getattr(_github, name)
    if name == "GitHubOidc":
        from freshtoken.testing._github_oidc import GitHubOidc

        return GitHubOidc
    raise AttributeError(f"module 'freshtoken.testing' has no attribute {name!r}")


__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "GITHUB_TEST_TOKEN",
    "MALFORMED",
    "AuthServer",
    "Client",
    "FakeClock",
    "GitHubOidc",
    "GitHubSecrets",
    "Knobs",
    "StoreContract",
]
