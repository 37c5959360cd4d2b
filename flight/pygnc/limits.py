"""Declared limits of configuration values, and the one check that applies them.

Every tunable of :class:`pygnc.config.Config` and of the filters' tunables
(:mod:`pygnc.estimation.tunables`) declares its limits next to its default with
:func:`bounded` - an interval in the usual notation (``"(0, 1]"``: 0 excluded, 1 included;
``"[0, inf]"``: infinity allowed), and for lists their length or for text its choices.
:func:`field_problems` checks a table of values against a dataclass's fields: unknown keys,
types (what TOML gives: a number field takes an integer, nothing takes a bool but a bool
field), NaN and infinities (refused unless the interval includes ``inf``) and the limits.
It names each bad value by its key path, so a loader can point at the file's line.

No numpy, nothing of pygnc: the supervisor and the status reporter import this.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple, TypeGuard, TypeVar, overload

_T = TypeVar("_T")


class Interval(NamedTuple):
    """An interval of the real line; ``lo_open`` / ``hi_open``: the bound is excluded."""

    lo: float
    hi: float
    lo_open: bool
    hi_open: bool

    @classmethod
    def parse(cls, text: str) -> Interval:
        """``"[0.01, 1]"``, ``"(0, inf]"``, ``"[-1, 1]"`` (ValueError if not of that form)."""
        t = text.strip()
        if len(t) < 5 or t[0] not in "[(" or t[-1] not in "])" or t.count(",") != 1:
            raise ValueError(f"not an interval: {text!r}")
        lo, hi = (float(x) for x in t[1:-1].split(","))
        if not lo <= hi or math.isnan(lo) or math.isnan(hi):
            raise ValueError(f"empty interval: {text!r}")
        return cls(lo, hi, t[0] == "(", t[-1] == ")")

    def __contains__(self, v: Any) -> bool:  # a number (a tuple's `in` takes any object)
        if math.isnan(v):
            return False
        above = v > self.lo if self.lo_open else v >= self.lo
        below = v < self.hi if self.hi_open else v <= self.hi
        return above and below

    def __str__(self) -> str:
        def fmt(x: float) -> str:
            return "inf" if x == math.inf else "-inf" if x == -math.inf else f"{x:g}"

        return f"{'(' if self.lo_open else '['}{fmt(self.lo)}, {fmt(self.hi)}{')' if self.hi_open else ']'}"


@overload
def bounded(
    default: _T, interval: str | None = None, *, length: int | None = None, choices: tuple | None = None
) -> _T: ...
@overload
def bounded(
    default: None,
    interval: str | None = None,
    *,
    length: int | None = None,
    choices: tuple | None = None,
    default_factory: Callable[[], _T],
) -> _T: ...
def bounded(
    default: Any,
    interval: str | None = None,
    *,
    length: int | None = None,
    choices: tuple | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field with its limits: *interval* for a number (or every number of a
    list), *length* for a list, *choices* for a value that must be one of a few.  Typed as
    the value it holds (as ``dataclasses.field`` is), so a field reads as its own type."""
    meta: dict[str, Any] = {}
    if interval is not None:
        meta["range"] = Interval.parse(interval)
    if length is not None:
        meta["length"] = length
    if choices is not None:
        meta["choices"] = tuple(choices)
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class Problem(NamedTuple):
    """One bad value: its key path (``("orbit_filter", "tesseral_degree")``, a list index
    as an int) and what is wrong with it."""

    key: tuple
    message: str
    #: Other keys the problem involves (a check of two keys against each other).
    others: tuple = ()

    @property
    def name(self) -> str:
        return key_name(self.key)

    def __str__(self) -> str:
        return f"{self.name} {self.message}" if self.key else self.message


def key_name(key: tuple) -> str:
    """``orbit_filter.tesseral_degree``, ``housekeeping_devices[1].period_s``; a key that is
    not plain printable text (control characters, an escape sequence, very long) is shown
    quoted and escaped, so no key of a file reaches a log, a terminal or the info file as
    it was written."""
    out = ""
    for k in key:
        if not isinstance(k, int):
            k = str(k)
            if not k.isprintable() or not k.isascii() or len(k) > SHOWN_CHARS:
                k = shown(k)
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else str(k))
    return out


def is_number(v: object) -> TypeGuard[float]:
    """An int or a float, not a bool (to the type checker: a float)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


#: What a value of each declared field type must be: (test, the words of a message).
_TYPES: dict[str, tuple[Callable[[object], bool], str]] = {
    "float": (is_number, "a number"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "dict": (lambda v: isinstance(v, dict), "a table"),
}


def _element_type(type_text: str) -> tuple[str, bool]:
    """(the element type of a ``tuple[X, ...]`` field or the type itself, is it a list);
    ``float | None`` is ``float``."""
    t = type_text.replace(" ", "").replace("|None", "")
    if t.startswith("tuple"):
        return (t[len("tuple[") :].split(",")[0] if "[" in t else ""), True
    return t, False


#: Most items a list value may hold (a mounting matrix holds 9, a partner prior's
#: covariance 36): a longer list is refused before anything is made of it.
MAX_LIST_ITEMS = 256
#: Longest text value, characters.
MAX_TEXT_CHARS = 1024
#: Characters of a value shown in a message (the rest cut, ``...``).
SHOWN_CHARS = 60


def shown(v: object) -> str:
    """*v* as a message shows it: its ``repr`` (control characters escaped), cut at
    :data:`SHOWN_CHARS` - a huge integer or list is named by its size instead."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
        return f"an integer of {len(str(abs(v))) if v.bit_length() < 10_000 else 'thousands of'} digits"
    if isinstance(v, (list, tuple, dict)) and len(v) > 16:
        return f"a {'table' if isinstance(v, dict) else 'list'} of {len(v)} items"
    try:
        text = repr(list(v) if isinstance(v, tuple) else v)  # (a TOML array, as it was written)
    except ValueError:  # (an integer past the interpreter's digit limit inside a list)
        return f"a value of type {type(v).__name__}"
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def number_problem(v: float, interval: Interval | None) -> str | None:
    """Why the number *v* is not acceptable under *interval* (None: it is)."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 1000:
        return f"must be a number in {interval or 'range'}, got {shown(v)}"  # (no float holds it)
    if isinstance(v, float) and math.isnan(v):
        return "must be a number, not nan"
    if interval is None:
        return None if math.isfinite(v) else f"must be finite, got {shown(v)}"
    if math.isinf(v) and v not in interval:
        return f"must be finite and in {interval}, got {shown(v)}"
    if v not in interval:
        return f"must be in {interval}, got {shown(v)}"
    return None


def field_problems(cls: type[Any], values: dict, prefix: tuple = (), known_only: bool = True) -> list[Problem]:
    """The problems of *values* (``{field name: value}``) as fields of the dataclass *cls*:
    unknown keys (if *known_only*), types, lengths, choices, NaN / infinities and declared
    intervals.  Lists may be lists or tuples.  Fields whose type is a table are checked for
    being a table only (their contents are their owner's to check)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    out: list[Problem] = []
    if known_only:
        unknown = sorted(set(values) - set(fields), key=str)
        for k in unknown:
            import difflib  # (only for a table with a bad key)

            close = difflib.get_close_matches(str(k), list(fields), n=1)
            out.append(Problem((*prefix, k), "is not a known key" + (f" (did you mean {close[0]}?)" if close else "")))
    for name, v in values.items():
        f = fields.get(name)
        if f is None:
            continue
        key = (*prefix, name)
        elem, is_list = _element_type(str(f.type))
        optional = "None" in str(f.type)
        if v is None and optional:
            continue
        rng, length, choices = f.metadata.get("range"), f.metadata.get("length"), f.metadata.get("choices")
        check = _TYPES.get(elem)
        if is_list:
            if not isinstance(v, (list, tuple)):
                out.append(Problem(key, f"must be a list, got {shown(v)}"))
                continue
            if len(v) > (length or MAX_LIST_ITEMS):
                out.append(Problem(key, f"must be a list of at most {length or MAX_LIST_ITEMS} values, got {len(v)}"))
                continue
            if check is not None and not all(check[0](e) for e in v):
                quoted = elem in ("int", "float") and any(isinstance(e, str) for e in v)
                example = "[74, 0x4B]" if elem == "int" else "[2.5]"
                hint = f" (numbers are written without quotes, e.g. {example})" if quoted else ""
                out.append(Problem(key, f"must be a list of {check[1].split(' ', 1)[-1]} values, got {shown(v)}{hint}"))
                continue
            if length is not None and len(v) != length:
                out.append(Problem(key, f"must be a list of {length} values, got {len(v)}"))
                continue
            items = v
        else:
            if check is not None and not check[0](v):
                out.append(Problem(key, f"must be {check[1]}, got {shown(v)}"))
                continue
            if isinstance(v, str) and len(v) > MAX_TEXT_CHARS:
                out.append(Problem(key, f"must be at most {MAX_TEXT_CHARS} characters, got {len(v)}"))
                continue
            if isinstance(v, dict) and len(v) > MAX_LIST_ITEMS:
                out.append(Problem(key, f"must be a table of at most {MAX_LIST_ITEMS} keys, got {len(v)}"))
                continue
            items = (v,)
        for e in items:
            msg = None
            if is_number(e):
                msg = number_problem(e, rng)
            if msg is None and choices is not None and e not in choices:
                msg = f"must be one of {', '.join(repr(c) for c in choices)}, got {shown(e)}"
            if msg is not None:
                out.append(Problem(key, ("every value " + msg) if is_list else msg))
                break
    return out


def undeclared_numbers(cls: type[Any]) -> list[str]:
    """Fields of *cls* holding numbers without a declared interval (tests keep this empty)."""
    out = []
    for f in dataclasses.fields(cls):
        elem, _ = _element_type(str(f.type))
        if elem in ("float", "int") and "range" not in f.metadata:
            out.append(f.name)
    return out
