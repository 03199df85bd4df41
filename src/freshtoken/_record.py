"""Frozen value classes (tokens, entries, endpoints, policies) without `dataclasses` at start.

`@record` gives what `@dataclass(frozen=True, slots=True)` gave: keyword or positional
`__init__` (then `__post_init__`), `__repr__` unless the class writes its own, `__eq__` and
`__hash__` over the compared fields, no assignment, `__slots__`, `__match_args__` (positional
patterns: `case Token(access)`); and `dataclasses.replace`,
`fields`, `asdict` and `is_dataclass` still work on it (its `__dataclass_fields__` is built on
first use). `dataclasses` compiles each class's methods with `exec` and imports `inspect`: 42 M
instructions for the module and 3 to 5 M per class, most of a `freshtoken token` store hit
(bench/startup.py). Type checkers read a record as a frozen dataclass (`dataclass_transform`).
"""

from __future__ import annotations

from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")
_MISSING: Any = object()


class _Uncompared:
    __slots__ = ("default",)

    def __init__(self, default: object) -> None:
        self.default = default


def uncompared(default: T) -> T:
    """A field's default, marking the field as left out of `==` and `hash` (compare=False)."""
    return _Uncompared(default)  # type: ignore[return-value]  # read by @record, never kept


class _DataclassFields:
    """`__dataclass_fields__`, built by `dataclasses.make_dataclass` when first asked for (by
    `dataclasses.replace`, `fields`, `asdict`): only code that imported dataclasses asks."""

    def __get__(self, instance: object, owner: Any) -> dict[str, Any]:
        built: dict[str, Any] | None = owner.__dict__.get("_record_dataclass_fields")
        if built is None:
            import dataclasses

            compared: tuple[str, ...] = owner._record_compared
            spec = []
            for name, default in owner._record_fields:
                given = {} if default is _MISSING else {"default": default}
                spec.append((name, Any, dataclasses.field(**given, compare=name in compared)))
            shadow: Any = dataclasses.make_dataclass(owner.__name__, spec)
            built = shadow.__dataclass_fields__
            type.__setattr__(owner, "_record_dataclass_fields", built)
        return built


class FrozenError(AttributeError):
    """Raised on assignment to a record's field (`dataclasses.FrozenInstanceError`'s role)."""


def _init(self: Any, *args: object, **kwargs: object) -> None:
    fields = self._record_fields
    if len(args) > len(fields):
        raise TypeError(f"{type(self).__name__}() takes {len(fields)} arguments")
    put = object.__setattr__
    for index, (name, default) in enumerate(fields):
        if index < len(args):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__}() got multiple values for {name!r}")
            put(self, name, args[index])
        elif name in kwargs:
            put(self, name, kwargs.pop(name))
        elif default is not _MISSING:
            put(self, name, default)
        else:
            raise TypeError(f"{type(self).__name__}() missing argument {name!r}")
    for unknown in kwargs:  # what is left names no field
        raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {unknown!r}")
    if hasattr(self, "__post_init__"):
        self.__post_init__()


def _compared(self: Any) -> tuple[object, ...]:
    return tuple(getattr(self, name) for name in self._record_compared)


def _eq(self: Any, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _compared(self) == _compared(other)


def _hash(self: Any) -> int:
    return hash(_compared(self))


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name, _ in self._record_fields)
    return f"{type(self).__qualname__}({shown})"


def _frozen(self: Any, name: str, value: object = None) -> None:
    raise FrozenError(f"cannot assign to field {name!r}")


def _getstate(self: Any) -> list[object]:
    return [getattr(self, name) for name, _ in self._record_fields]


def _setstate(self: Any, state: list[object]) -> None:
    for (name, _), value in zip(self._record_fields, state, strict=True):
        object.__setattr__(self, name, value)
    if hasattr(self, "__post_init__"):  # what it derives from its fields (slots): a copy too
        self.__post_init__()


@dataclass_transform(frozen_default=True, field_specifiers=())
def record(cls: type[T]) -> type[T]:
    """`cls` as a frozen, slotted value class of its annotated fields (ClassVar ones aside)."""
    inherited: list[tuple[str, Any]] = list(getattr(cls, "_record_fields", ()))
    compared = list(getattr(cls, "_record_compared", ()))
    own: list[str] = []
    body = dict(cls.__dict__)
    for name, annotation in body.get("__annotations__", {}).items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        default = body.pop(name, _MISSING)
        if isinstance(default, _Uncompared):
            default = default.default
        elif name not in compared:
            compared.append(name)
        inherited = [(n, d) for n, d in inherited if n != name] + [(name, default)]
        own.append(name)
    for name in ("__dict__", "__weakref__"):
        body.pop(name, None)
    body.setdefault("__match_args__", tuple(name for name, _ in inherited))
    methods = {"__init__": _init, "__eq__": _eq, "__hash__": _hash, "__repr__": _repr}
    for name, method in methods.items():
        if name not in body or name == "__hash__":
            body[name] = method
    body.update(
        __slots__=tuple(own),
        __setattr__=_frozen,
        __delattr__=_frozen,
        __getstate__=_getstate,
        __setstate__=_setstate,
        __dataclass_fields__=_DataclassFields(),
        _record_fields=tuple(inherited),
        _record_compared=tuple(compared),
    )
    made: type[T] = type(cls.__name__, cls.__bases__, body)
    return made


def record_fields(cls_or_record: object) -> tuple[str, ...]:
    """The names of a record's fields, in order (`dataclasses.fields`, names only)."""
    return tuple(name for name, _ in cls_or_record._record_fields)  # type: ignore[attr-defined]


def replace(obj: T, **changes: object) -> T:
    """A copy of the record (or dataclass) `obj` with `changes` (`dataclasses.replace`)."""
    if not hasattr(type(obj), "_record_fields"):
        import dataclasses

        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    values: dict[str, object] = {n: getattr(obj, n) for n in record_fields(obj)}
    values.update(changes)
    return obj.__class__(**values)
