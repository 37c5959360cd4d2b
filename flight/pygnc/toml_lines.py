"""Where a key is written in a TOML text: the line an error message points at.

``tomllib`` gives values without positions; :func:`find_line` scans the text for the line
that sets a key path such as ``("orbit_filter", "tesseral_degree")`` or
``("housekeeping_devices", 1, "period_s")`` (the second ``[[housekeeping_devices]]``
table).  Table headers, arrays of tables, dotted and quoted keys and inline tables are
understood; it is a locator for messages, not a parser - a path it cannot place gives
None, never an exception.
"""

from __future__ import annotations

import re

_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*(.+?)\s*\]\]\s*(#.*)?$")
_TABLE_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*="""
)
_PART = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|$)""")
_ERROR_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def _parts(dotted: str) -> tuple[str, ...]:
    out = []
    for m in _PART.finditer(dotted):
        p = m.group(1)
        out.append(p[1:-1] if p[:1] in "\"'" else p)
    return tuple(out)


def _same(a: object, b: object) -> bool:
    return a == b or str(a) == str(b)


def _prefix(short: tuple, long: tuple) -> bool:
    return len(short) <= len(long) and all(_same(x, y) for x, y in zip(short, long))


def find_line(text: str, key: tuple) -> int | None:
    """The 1-based line of *text* that sets *key* (a path of names and array-of-tables
    indices): the line of the key itself if it is there, else the line of the closest
    enclosing table or inline table; None if nothing of it is in *text*."""
    if not key:
        return None
    table: tuple = ()
    counts: dict[tuple, int] = {}
    best_line, best_len = None, 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _ARRAY_HEADER.match(line)
        if m:
            name = _parts(m.group(1))
            counts[name] = counts.get(name, -1) + 1
            table = (*name, counts[name])
            path = table
        else:
            m = _TABLE_HEADER.match(line)
            if m:
                table = _parts(m.group(1))
                path = table
            else:
                m = _KEY.match(line)
                if not m:
                    continue
                path = (*table, *_parts(m.group(1)))
        if len(path) == len(key) and _prefix(path, key):
            return number
        if _prefix(path, key) and len(path) > best_len:
            best_line, best_len = number, len(path)
    return best_line


def syntax_error_line(message: str, text: str) -> int | None:
    """The line a ``tomllib.TOMLDecodeError`` message names (``(at line 3, column 5)``;
    ``(at end of document)``: the last line)."""
    m = _ERROR_LINE.search(message)
    if m:
        return int(m.group(1))
    if "end of document" in message:
        return max(1, len(text.splitlines()))
    return None
