"""Secrets from the OS keyring, through the real `keyring` package and command processes.

The backend is keyrings.alt's file keyring (PYTHON_KEYRING_BACKEND, under XDG_DATA_HOME): a real
backend standing in for the Secret Service, macOS Keychain or Windows Credential Locker, which
a CI machine does not have."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from freshtoken.testing import AuthServer, Client
from tests._cli import cli_env, ft
from tests.helpers import CANARY_SECRET, assert_no_leak, require_module

FILE_BACKEND = "keyrings.alt.file.PlaintextKeyring"


@pytest.fixture(autouse=True)
def _keyring_packages() -> None:
    require_module("keyring")
    require_module("keyrings.alt")


def keyring_env(tmp_path: Path, server: AuthServer | None = None, **extra: str) -> dict[str, str]:
    env = cli_env(
        tmp_path, server, PYTHON_KEYRING_BACKEND=FILE_BACKEND, XDG_DATA_HOME=str(tmp_path / "data")
    )
    env.pop("FRESHTOKEN_CLIENT_SECRET", None)
    return {**env, **extra}


def keyring_cli(args: list[str], env: dict[str, str], stdin: str = "") -> str:
    """The keyring package's own command line, as a user would run it."""
    out = subprocess.run(
        [sys.executable, "-m", "keyring", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture
def canary_server() -> AuthServer:
    return AuthServer(clients=[Client("ci-client", CANARY_SECRET)])


def test_client_secret_from_the_keyring(tmp_path: Path, canary_server: AuthServer) -> None:
    with canary_server as server:
        env = keyring_env(
            tmp_path,
            server,
            FRESHTOKEN_CLIENT_ID="ci-client",
            FRESHTOKEN_CLIENT_SECRET_KEYRING="freshtoken/ci-client",
        )
        keyring_cli(["set", "freshtoken", "ci-client"], env, CANARY_SECRET + "\n")
        token = ft(["-vv", "token", "--format", "json"], env, tmp_path)
        assert token.returncode == 0, token.stderr
        assert json.loads(token.stdout)["access_token"].startswith("at_")
        doctor = ft(["doctor"], env, tmp_path)
        assert "client_secret = set  (from $FRESHTOKEN_CLIENT_SECRET_KEYRING)" in doctor.stdout
        assert doctor.returncode == 0, doctor.stdout
        assert server.stats()["tokens_minted"] == 1  # doctor found the stored token
    for out in (token, doctor):
        assert CANARY_SECRET not in out.stdout + out.stderr
    assert_no_leak("doctor", doctor.stdout)


def test_a_profile_names_the_entry(tmp_path: Path, canary_server: AuthServer) -> None:
    with canary_server as server:
        env = keyring_env(tmp_path)
        user = tmp_path / "config" / "freshtoken"  # only a trusted file names keyring entries
        user.mkdir(parents=True)
        (user / "freshtoken.toml").write_text(
            f'[ci]\ntoken_url = "{server.token_url}"\nclient_id = "ci-client"\n'
            'client_secret_keyring = "freshtoken/ci"\n'
        )
        keyring_cli(["set", "freshtoken", "ci"], env, CANARY_SECRET + "\n")
        out = ft(["--profile", "ci", "token"], env, tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("at_")


@pytest.mark.slow
def test_the_store_key_is_created_in_the_keyring_and_reused(
    tmp_path: Path, server: AuthServer
) -> None:
    store = tmp_path / "store" / "t.db"
    env = keyring_env(
        tmp_path,
        server,
        FRESHTOKEN_CLIENT_SECRET="demo-secret",
        FRESHTOKEN_STORE=f"sqlite://{store}",
        FRESHTOKEN_STORE_KEY_KEYRING="freshtoken/store-key",
    )
    first = ft(["token"], env, tmp_path)
    second = ft(["token"], env, tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout  # the second process opened the first one's entry
    assert server.stats()["tokens_minted"] == 1
    assert len(keyring_cli(["get", "freshtoken", "store-key"], env)) == 44  # base64 of 32 bytes
    assert sorted(p.name for p in store.parent.iterdir() if "key" in p.name) == []  # no key file
    # Another key in the keyring: the entry cannot be opened, so it is dropped and minted again.
    keyring_cli(["set", "freshtoken", "store-key"], env, "A" * 43 + "=\n")
    third = ft(["token"], env, tmp_path)
    assert third.returncode == 0, third.stderr
    assert third.stdout != first.stdout and server.stats()["tokens_minted"] == 2


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            {"FRESHTOKEN_CLIENT_SECRET_KEYRING": "freshtoken/missing"},
            "holds no secret for service 'freshtoken', name 'missing'",
        ),
        ({"FRESHTOKEN_CLIENT_SECRET_KEYRING": "no-slash"}, "must be SERVICE/NAME"),
        (
            {
                "FRESHTOKEN_CLIENT_SECRET_KEYRING": "freshtoken/ci",
                "FRESHTOKEN_CLIENT_SECRET": "demo-secret",
            },
            "both $FRESHTOKEN_CLIENT_SECRET and $FRESHTOKEN_CLIENT_SECRET_KEYRING are set",
        ),
        (
            {
                "FRESHTOKEN_CLIENT_SECRET_KEYRING": "freshtoken/ci",
                "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            },
            "the OS keyring cannot be used here (NoKeyringError",
        ),
    ],
    ids=["missing-entry", "malformed", "two-sources", "no-backend"],
)
def test_keyring_trouble_is_a_configuration_error(
    tmp_path: Path, server: AuthServer, extra: dict[str, str], needle: str
) -> None:
    out = ft(["token"], {**keyring_env(tmp_path, server), **extra}, tmp_path)
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr and "$FRESHTOKEN_CLIENT_SECRET" in out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert server.stats()["tokens_minted"] == 0


def test_a_profile_may_not_give_a_secret_twice(tmp_path: Path, server: AuthServer) -> None:
    (tmp_path / "freshtoken.toml").write_text(
        '[default]\nclient_secret_file = "/run/secrets/x"\nclient_secret_keyring = "a/b"\n'
    )
    out = ft(["token"], keyring_env(tmp_path, server), tmp_path)
    assert out.returncode == 2
    assert "gives client_secret twice: client_secret_file and client_secret_keyring" in out.stderr


def test_exec_children_do_not_get_keyring_references(tmp_path: Path, server: AuthServer) -> None:
    env = keyring_env(
        tmp_path,
        server,
        FRESHTOKEN_CLIENT_SECRET="demo-secret",
        FRESHTOKEN_STORE_KEY_KEYRING="freshtoken/store-key",
    )
    code = "import os; print(sorted(k for k in os.environ if k.startswith('FRESHTOKEN_')))"
    out = ft(["exec", "--", sys.executable, "-c", code], env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "FRESHTOKEN_STORE_KEY_KEYRING" not in out.stdout and "FRESHTOKEN_URL" in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("method", ["private_key_jwt", "tls_client_auth"])
def test_the_client_key_from_the_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """A PEM private key (several lines) kept in the keyring signs private_key_jwt assertions
    or, with its certificate there too, proves the client in the TLS handshake."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from keyrings.alt.file import PlaintextKeyring  # type: ignore[import-untyped]

    from freshtoken.oauth._jwt_auth import PrivateKeyJwt
    from freshtoken.testing._tls import key_pem

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key_pem(key)
    env = keyring_env(tmp_path, FRESHTOKEN_CLIENT_KEY_KEYRING="freshtoken/ci-key")
    monkeypatch.setenv("XDG_DATA_HOME", env["XDG_DATA_HOME"])
    keyring = PlaintextKeyring()  # the file backend the command reads, as a person filled it
    keyring.set_password("freshtoken", "ci-key", pem)
    tls = method == "tls_client_auth"
    clients = [
        Client("ci", None, jwks=(PrivateKeyJwt("ci", key).jwk,), auth_method=method,
               tls_client_auth_subject_dn="CN=ci"),
    ]  # fmt: skip
    with AuthServer(clients=clients, tls=tls) as server:
        env.update(
            FRESHTOKEN_TOKEN_URL=server.token_url,
            FRESHTOKEN_CLIENT_ID="ci",
            FRESHTOKEN_AUTH_METHOD=method,
        )
        if tls:
            keyring.set_password("freshtoken", "ci-cert", server.issue_certificate("ci", key)[0])
            (tmp_path / "ca.pem").write_text(server.ca_pem)
            env.update(
                FRESHTOKEN_CLIENT_CERT_KEYRING="freshtoken/ci-cert",
                SSL_CERT_FILE=str(tmp_path / "ca.pem"),
            )
        token = ft(["token"], env, tmp_path)
        assert token.returncode == 0, token.stderr
        assert server.stats()["minted"]["ci"]["client_credentials"] == 1
        doctor = ft(["doctor"], env, tmp_path)
        assert "client_key = set  (from $FRESHTOKEN_CLIENT_KEY_KEYRING)" in doctor.stdout
    body = "".join(pem.splitlines()[1:-1])
    for text in (token.stdout, token.stderr, doctor.stdout, doctor.stderr):
        assert body[:60] not in text
