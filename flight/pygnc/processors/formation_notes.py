"""The formation processor's notes (``estimator_note``, estimator ``formation``; codes:
:data:`pygnc.notes.NOTES`), and those it issues once per batch, at its end."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Output

if TYPE_CHECKING:
    from .formation import FormationProcessor


def note(code: str, text: str, peer_id: int = 0) -> Output:
    """A note (codes: :data:`pygnc.notes.NOTES`) about partner *peer_id* (0: none)."""
    return ("estimator_note", {"estimator": "formation", "code": code, "peer_id": int(peer_id), "text": text})


def batch_notes(proc: FormationProcessor, b: dict, out: list[Output]) -> None:
    """The batch-wide notes of *proc* at ``batch_end`` *b*, each once: no range data, no own
    fix, and each heard partner that has no estimate, with the reason."""

    def once(code: str, text: str, key: str | None = None, peer_id: int = 0) -> None:
        key = key or code
        if key not in proc.notes_sent:
            proc.notes_sent.add(key)
            out.append(note(code, text, peer_id))

    if proc.part == 0 and int(b["n_peer_fix"]) == 0 and int(b["n_range"]) == 0:
        once(
            "no_range_data",
            "no peer fix and no range in the batch (range files missing or empty): no formation estimate",
        )
    if proc.part == 0 and proc.n_own_valid == 0 and proc.appeared:
        once("no_own_fix", "no valid own GPS fix: no relative state for any peer")
    for pid, p in sorted(proc.peers.items()):
        if p.filter.initialized or not p.heard:
            continue
        if proc.range_only:
            if proc.n_own_valid:
                once(
                    "peer_not_initialized",
                    f"peer 0x{pid:02X}: ranges heard, but none within "
                    f"{proc.filter_config.max_init_pair_gap_s:.0f} s after a valid own fix: no estimate",
                    key=f"peer_not_initialized:{pid}",
                    peer_id=pid,
                )
        elif p.n_fixes_valid == 0:
            once(
                "peer_no_valid_fix",
                f"peer 0x{pid:02X}: {p.n_fixes} fixes, none valid: no estimate",
                key=f"peer_no_valid_fix:{pid}",
                peer_id=pid,
            )
        elif proc.n_own_valid:
            once(
                "peer_not_initialized",
                f"peer 0x{pid:02X}: no valid own fix within {proc.filter_config.max_init_pair_gap_s:.0f} s "
                "before any of its fixes: no estimate",
                key=f"peer_not_initialized:{pid}",
                peer_id=pid,
            )
