from __future__ import annotations

import pickle

import pytest

from freshtoken import Secret, Token


def test_token_repr_and_str_hide_values() -> None:
    token = Token(
        "access-canary-123456", "Bearer", 1100.0, 1000.0, "refresh-canary-654321", ("a", "b")
    )
    texts = [repr(token), str(token), f"{token}", repr([token])]
    assert [t for t in texts if "access-canary" in t or "refresh-canary" in t] == []
    assert "refresh_token=held" in repr(token)
    assert "scope=a b" in repr(token)


def test_token_expiry_arithmetic() -> None:
    token = Token("a" * 10, "Bearer", expires_at=1100.0, issued_at=1000.0)
    assert token.lifetime == 100.0
    assert token.expires_in(1040.0) == 60.0
    assert token.valid_for(60.0, 1040.0)
    assert not token.valid_for(60.1, 1040.0)
    assert token.authorization == "Bearer " + "a" * 10


def test_secret_never_shows_itself() -> None:
    secret = Secret("canary-secret-zzz999")
    assert "canary" not in repr(secret) + str(secret) + f"{secret}" + repr({"s": secret})
    assert secret.reveal() == "canary-secret-zzz999"
    with pytest.raises(TypeError):
        pickle.dumps(secret)
