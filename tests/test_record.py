"""`@record` keeps what `@dataclass(frozen=True, slots=True)` promised the value classes."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import ClassVar

import pytest

from freshtoken import Endpoints, Token
from freshtoken._record import record, replace, uncompared


@record
class Base:
    name: str
    size: int = 1
    kind: ClassVar[str] = "base"
    note: str = uncompared("")

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", self.name.strip())


@record
class Child(Base):
    extra: tuple[str, ...] = ()


def test_a_record_is_a_frozen_value() -> None:
    one = Child(" a ", 2, note="x")
    assert (one.name, one.size, one.note, one.extra, one.kind) == ("a", 2, "x", (), "base")
    assert one == Child("a", 2, note="y") and hash(one) == hash(Child("a", 2))  # note: uncompared
    assert one != Child("a", 3) and one != Base("a", 2)
    assert repr(one) == "Child(name='a', size=2, note='x', extra=())"
    with pytest.raises(AttributeError, match="cannot assign"):
        one.size = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        one.other = 1  # type: ignore[attr-defined]  # slots: no other attribute
    assert not hasattr(one, "__dict__")
    with pytest.raises(TypeError, match="missing argument 'name'"):
        Child()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        Child("a", colour=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values"):
        Child("a", name="b")  # type: ignore[misc]


def test_dataclasses_functions_and_copies_still_work() -> None:
    one = Child("a", 2, extra=("e",))
    assert replace(one, size=5) == dataclasses.replace(one, size=5) == Child("a", 5, extra=("e",))
    assert [f.name for f in dataclasses.fields(Child)] == ["name", "size", "note", "extra"]
    assert dataclasses.asdict(one) == {"name": "a", "size": 2, "note": "", "extra": ("e",)}
    assert dataclasses.is_dataclass(one)
    assert copy.deepcopy(one) == one and pickle.loads(pickle.dumps(one)) == one
    token = Token("abc", "Bearer", 10.0, 1.0)
    assert dataclasses.replace(token, access_token="x").access_token == "x"
    assert Endpoints("https://a.test/token", sources=(("token_url", "here"),)) == Endpoints(
        "https://a.test/token"
    )


def test_replace_copies_a_plain_dataclass_too() -> None:
    """One `replace` for both kinds: code that copies a dataclass with it (the spender copies
    the client's Timeouts) gets `dataclasses.replace`, not an AttributeError."""
    from freshtoken._http import Timeouts

    assert replace(Timeouts(1.0, 2.0), read=5.0) == Timeouts(1.0, 5.0)


def test_positional_patterns_match_a_record_as_a_dataclass() -> None:
    """`__match_args__` lists the fields in `__init__` order, inherited ones first."""
    assert Child.__match_args__ == ("name", "size", "note", "extra")
    match Child("a", 2, "n", ("e",)):
        case Child(name, size, _, (extra,)):
            assert (name, size, extra) == ("a", 2, "e")
        case _:
            pytest.fail("no match")
    match Token("at_canary_access_000001", "Bearer", 10.0, 1.0):
        case Token(access, kind):
            assert (access, kind) == ("at_canary_access_000001", "Bearer")
        case _:
            pytest.fail("no match")


def test_a_copy_derives_what_its_post_init_derives() -> None:
    """A copy keeps only the fields: what `__post_init__` works out from them (the Basic
    credentials of a client secret) is worked out again, so the copy works as the original."""
    from freshtoken import ClientSecretBasic, Secret

    auth = ClientSecretBasic("demo-client", Secret("demo-secret"))
    copied = copy.copy(auth)  # (a deep copy would copy the Secret, which refuses to be)
    sent: dict[str, str] = {}
    copied.apply(sent, {})
    assert copied == auth and sent["Authorization"].startswith("Basic ")
