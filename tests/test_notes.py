"""The estimators' notes are declared once (pygnc.notes), reach the ground whole and are
rate-limited per estimator, code and partner (issue 43 item 5)."""

from __future__ import annotations

import ast

from flight_harness import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from pygnc.formats import batch as B
from pygnc.notes import NOTES, NOTES_BY_CODE
from pygnc.tasks.batch_writer import BatchRecorder

FLIGHT = REPO / "flight" / "pygnc"


def _literals(node) -> list[str]:
    """The strings a code expression can be: a literal, or either branch of ``a if c else b``."""
    if isinstance(node, ast.IfExp):
        return _literals(node.body) + _literals(node.orelse)
    return [node.value] if isinstance(node, ast.Constant) and isinstance(node.value, str) else []


def sent_codes() -> dict[str, list[str]]:
    """Every note code the flight code sends, with where: the first argument of a
    ``_note(...)``, ``note(...)`` or ``once(...)`` call, the second of ``_note_once(...)``, the first item of
    a tuple appended to ``notes``, and the value of a ``"code"`` key in a dict literal."""
    out: dict[str, list[str]] = {}

    def add(codes, path, node):
        for code in codes:
            out.setdefault(code, []).append(f"{path.relative_to(REPO)}:{node.lineno}")

    for path in sorted(FLIGHT.rglob("*.py")):
        if path.parent.name == "bus":
            continue  # (the message declarations: "code": "str")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                if name in ("_note", "note", "once") and node.args:
                    add(_literals(node.args[0]), path, node)
                elif name == "_note_once" and len(node.args) > 1:
                    add(_literals(node.args[1]), path, node)
                elif (
                    name == "append"
                    and isinstance(f, ast.Attribute)
                    and isinstance(f.value, ast.Attribute)
                    and f.value.attr == "notes"
                    and node.args
                    and isinstance(node.args[0], ast.Tuple)
                    and node.args[0].elts
                ):
                    # (the configuration source's notes are (log level, text): not codes)
                    add([c for c in _literals(node.args[0].elts[0]) if c.isidentifier()], path, node)
            elif isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values):
                    if k is not None and _literals(k) == ["code"]:
                        add(_literals(v), path, node)
    return out


def test_every_note_the_flight_sends_is_declared_once():
    sent = sent_codes()
    # the scan finds the notes of every estimator and of the range-only hypotheses
    assert {"no_fix", "no_position", "range_only_side", "range_only_prior_refused", "unknown_peer"} <= set(sent)
    undeclared = {c: w for c, w in sent.items() if c not in NOTES_BY_CODE}
    assert not undeclared, f"declare these in pygnc/notes.py: {undeclared}"
    assert not set(NOTES_BY_CODE) - set(sent), "declared codes no estimator sends"
    for n in NOTES:
        assert n.estimator and n.meaning and n.action
        assert set(n.estimator.split(", ")) <= {"orbit", "attitude", "formation"}


def test_no_code_or_estimator_is_ever_cut_in_the_batch():
    kind = B.KINDS_BY_NAME["note"]
    width = {f.name: f.count for f in kind.fields}
    assert max(len(n.code.encode()) for n in NOTES) <= width["code"] == B.NOTE_CODE_BYTES
    for n in NOTES:
        for est in n.estimator.split(", "):
            assert len(est.encode()) <= width["estimator"]
        v = B.Record(0, kind.code, 0.0, kind.pack(kind.encode("estimator_note", _body(n.code))), b"").values()
        assert v["code"] == n.code


def _body(code="range_only_window_extended", text="short", peer_id=0x4B, estimator="formation"):
    return {"estimator": estimator, "code": code, "peer_id": peer_id, "text": text}


def _decoded(body) -> dict:
    raw = B.encode_record(B.KINDS_BY_NAME["note"], 1e9, B.KINDS_BY_NAME["note"].encode("estimator_note", body))
    (r,), _ = B.decode_records(raw)
    return r.values()


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_a_cut_text_says_so_and_never_splits_a_character(text):
    v = _decoded(_body(text=text))
    n = len(text.encode("utf-8"))
    if n <= B.NOTE_TEXT_BYTES:
        assert v["text"] == text.rstrip("\0") and not v["flags"] & 1
    else:
        assert v["flags"] & 1 and v["text"].endswith(B.NOTE_CUT_MARK)
        assert len(v["text"].encode("utf-8")) <= B.NOTE_TEXT_BYTES
        assert text.startswith(v["text"][: -len(B.NOTE_CUT_MARK)].rstrip())
    assert v["peer_id"] == 0x4B and v["code"] == "range_only_window_extended"


def test_a_first_layout_note_reads_as_a_note_whose_cut_is_inferred():
    old = B.KINDS_BY_NAME["note_v1"]
    for text, cut in (("x" * 64, True), ("short", False)):
        raw = B.encode_record(old, 1e9, {"estimator": "formation", "code": "range_only_start", "text": text})
        (r,), _ = B.decode_records(raw)
        assert r.kind.read_as == "note"
        v = r.values()
        assert v["peer_id"] == 0 and bool(v["flags"] & 1) is cut


class _Store:
    def __init__(self):
        self.records = []

    def append(self, raw, t, mark=None):
        self.records.append(raw)
        return True


def test_notes_are_rate_limited_per_estimator_code_and_partner():
    """One partner's note never hides another's, nor one estimator's another's (the orbit and
    the formation both send propagation_horizon)."""
    kind = B.KINDS_BY_NAME["note"]
    store = _Store()
    t = [1e9]
    rec = BatchRecorder([kind], {"note": kind.period_s}, store, lambda: t[0])
    for pid in (0x4B, 0x4C, 0x4B):
        rec.handle("estimator_note", _body("range_only_start", f"peer 0x{pid:02X}: fitted", pid))
        t[0] += 1.0
    rec.handle("estimator_note", _body("propagation_horizon", "x", 0, "orbit"))
    rec.handle("estimator_note", _body("propagation_horizon", "x", 0, "formation"))
    t[0] += kind.period_s
    rec.handle("estimator_note", _body("range_only_start", "again", 0x4B))  # the next period
    got = [B.decode_records(r)[0][0].values() for r in store.records]
    assert [(v["estimator"], v["code"], v["peer_id"]) for v in got] == [
        ("formation", "range_only_start", 0x4B),
        ("formation", "range_only_start", 0x4C),
        ("orbit", "propagation_horizon", 0),
        ("formation", "propagation_horizon", 0),
        ("formation", "range_only_start", 0x4B),
    ]
