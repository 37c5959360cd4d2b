"""Byte-level corruption with provenance, for the batch-file fuzz tests.

Every byte of the clean buffer carries the id of the unit (record, GPS packet, range
packet) it belongs to.  Corruptions mark the units they touch; afterwards
:meth:`Corrupted.intact` tells which units survive byte-for-byte and where they now are.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import strategies as st

OPS = ("flip", "insert", "delete", "truncate", "prefix", "suffix", "drop_crlf", "garbage_middle")

#: Hypothesis strategy for a list of corruption operations (op, where in [0,1), length, seed).
corruptions = st.lists(
    st.tuples(
        st.sampled_from(OPS),
        st.floats(0.0, 1.0, exclude_max=True),
        st.integers(1, 300),
        st.integers(0, 2**32 - 1),
    ),
    min_size=1,
    max_size=4,
)


@dataclass
class Corrupted:
    data: bytearray
    tags: list[int]  # unit id per byte, -1 for inserted bytes
    touched: set[int] = field(default_factory=set)

    @classmethod
    def from_units(cls, units: list[bytes]) -> Corrupted:
        data, tags = bytearray(), []
        for uid, u in enumerate(units):
            data += u
            tags += [uid] * len(u)
        return cls(data, tags)

    def _insert(self, i: int, junk: bytes) -> None:
        if 0 < i < len(self.tags) and self.tags[i - 1] == self.tags[i] >= 0:
            self.touched.add(self.tags[i])
        self.data[i:i] = junk
        self.tags[i:i] = [-1] * len(junk)

    def _delete(self, i: int, j: int) -> None:
        self.touched.update(t for t in self.tags[i:j] if t >= 0)
        del self.data[i:j]
        del self.tags[i:j]

    def apply(self, op: str, where: float, length: int, seed: int) -> None:
        rng = random.Random(seed)
        n = len(self.data)
        i = int(where * (n + 1))
        junk = bytes(rng.randrange(256) for _ in range(length))
        if op == "flip" and n:
            i = min(i, n - 1)
            self.data[i] ^= 1 << rng.randrange(8)
            if self.tags[i] >= 0:
                self.touched.add(self.tags[i])
        elif op in ("insert", "garbage_middle"):
            self._insert(min(i, n), junk if op == "garbage_middle" else junk[: 1 + length % 40])
        elif op == "delete":
            self._delete(i, min(n, i + 1 + length % 40))
        elif op == "truncate":
            self._delete(max(0, n - 1 - length), n)
        elif op == "prefix":
            self._insert(0, junk)
        elif op == "suffix":
            self._insert(n, junk)
        elif op == "drop_crlf":
            hits = [k for k in range(n - 1) if self.data[k : k + 2] == b"\r\n"]
            if hits:
                k = hits[int(where * len(hits))]
                self._delete(k, k + 2)

    def intact(self, sizes: list[int]) -> dict[int, int]:
        """{unit id: new offset} of units present whole, contiguous and untouched."""
        first: dict[int, int] = {}
        count: dict[int, int] = {}
        for pos, t in enumerate(self.tags):
            if t >= 0:
                first.setdefault(t, pos)
                count[t] = count.get(t, 0) + 1
        return {
            u: first[u]
            for u in first
            if u not in self.touched and count[u] == sizes[u] and self.tags[first[u] + sizes[u] - 1] == u
        }
