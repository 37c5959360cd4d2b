"""``~/pygnc_info.txt``: one glance of human-readable state, under 200 bytes (ASCII).

Six lines, each present every time (``-`` when a number is unknown), and a seventh when
the configuration needs attention::

    pygnc r<run> up<uptime>s sc<spacecraft time> [STOP]
    orb <quality> [<3-D 1-sigma>m | <age>] [: no fix] fix <valid>/<total>
    att <quality> [<1-sigma>deg | <age>] | att rates only <rate>deg/s [data <age> ago] [no pos]
    frm <peers ok>/<peers> <worst 3-D 1-sigma>m [acq<ranges>/<window>m | amb<distance>m]
    tsk <running | stopped>/<total> rst<restarts> [FAIL] [WF] [LL] [DF] [DH] [NI]
    in <records> rec <skipped> bad
    cfg [rejected <file>:<line> <key>, on <last accepted | defaults>] [; imu reflection]

``quality`` is the status file's (:data:`pygnc.formats.status.ESTIMATE_QUALITY`): ``ok``
(usable now) and ``uncertain`` show the 1-sigma (an attitude whose 1-sigma is past 180 deg
is ``unknown >180deg``: any orientation fits); ``behind``, ``ahead`` and ``horizon`` show
how far the estimate's epoch is from "now" (``12s``, ``40m``, ``4.1h``, ``12.5d``,
``1.7y``).  ``data 70s ago``: the attitude's last sensor sample is that old (shown from
:data:`ATT_DATA_AGE_SHOWN_S` on; the estimate is propagated since, its sigma growing).
``tsk``: the tasks running, or in the final status (``STOP``) those that stopped cleanly.
``acq12/45m``: a range-only peer is still acquiring (12 of its 45 minutes of
ranges; the least advanced one is shown); else ``amb6.2km``: the orbits the ranges leave open
for a peer come up to that far from its estimate in an orbit (the largest is shown).  ``WF``: a status
write failed in this run; ``LL``: logs limited; ``DF``: downlink failed (the batch writer
could not write every record of this run); ``DH``: downlink records held in memory, waiting
for room on the disk; ``NI``: no inode free on the home's file system.  Every number is printed in a bounded width, so
the six lines always fit; the ``cfg`` line (status flags ``config_rejected``,
``imu_reflection``) takes the room left: what the run uses and the reflection are kept
whole, the refused file's problem is cut to fit (:func:`cfg_line`).  Should the six lines
leave it less than its shortest words (every line at its widest at once), their optional
parts give way first, in :data:`GIVE_WAY`'s order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .status import (
    ESTIMATE_QUALITY,
    FLAG_ATT_NO_POSITION,
    FLAG_CONFIG_REJECTED,
    FLAG_DOWNLINK_FAILED,
    FLAG_IMU_REFLECTION,
    FLAG_LOGS_LIMITED,
    FLAG_NO_VALID_FIX,
    FLAG_STOPPING,
    FLAG_TASK_FAILED,
    FLAG_WRITE_FAILED,
    MAX_PEERS,
    MAX_TASKS,
    TASK_STATES,
)

MAX_BYTES = 199
#: The optional parts of the lines, (line, part), in the order they give way when the lines
#: would leave the ``cfg`` line less than its shortest words: the attitude's data age, the
#: formation's acq/amb, the attitude's ``no pos``, the orbit's ``: no fix``, the task flags
#: from the last (``NI``) to the first (``FAIL``).  With every one gone the lines fit with room.
GIVE_WAY = ((2, 1), (3, 1), (2, 2), (1, 1), (4, 6), (4, 5), (4, 4), (4, 3), (4, 2), (4, 1))


def _num(x: float, unit: str = "") -> str:
    """A non-negative figure in at most 7 characters (+ unit)."""
    if x is None or not isinstance(x, (int, float)) or math.isnan(x):
        return "-"
    x = abs(float(x))
    if x < 1000:
        text = f"{x:.1f}"
    elif x < 1e6:
        text = f"{x:.0f}"
    else:
        text = f"{x:.1e}".replace("e+0", "e").replace("e+", "e")
    return text + unit


def _distance(m: float) -> str:
    """A distance in at most 7 characters: ``850m``, ``6.2km``, ``120km``."""
    if not isinstance(m, (int, float)) or not math.isfinite(m):
        return "-"
    m = abs(float(m))
    if m < 1000:
        return f"{m:.0f}m"
    if m < 1e5:
        return f"{m / 1000:.1f}km"
    return f"{min(m / 1000, 99999):.0f}km"


def _count(n: Any) -> str:  # (a decoded value: anything int() may take)
    """A counter in at most 5 characters."""
    try:
        n = int(n)
    except (TypeError, ValueError):
        return "-"
    if n < 100_000:
        return str(n)
    if n < 100_000_000:
        return f"{n // 1000}k"
    return f"{n // 1_000_000}M"[:5]


#: An attitude whose 1-sigma is past this is unknown (any orientation fits), deg.
ATT_UNKNOWN_SIGMA_DEG = 180.0

#: The attitude line says how old its last sensor sample is once it is this old, s (samples
#: come every few seconds; more than this and the estimate is running on propagation).
ATT_DATA_AGE_SHOWN_S = 20.0


def duration(seconds: float) -> str:
    """``12s``, ``40m``, ``4.1h``, ``12.5d``, ``1.7y`` (at most 6 characters)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = abs(seconds)
    if s < 100:
        return f"{s:.0f}s"
    if s < 6000:
        return f"{s / 60:.0f}m"
    if s < 48 * 3600:
        return f"{s / 3600:.1f}h"
    if s < 365.25 * 86400:
        return f"{s / 86400:.1f}d"
    return f"{min(s / 31_557_600, 999.0):.1f}y"


def _estimate(name: str, q: str, epoch: float, now: float, sigma: str) -> str:
    if q in ("ok", "uncertain"):
        return f"{name} {q} {sigma}"
    if q in ("behind", "ahead", "horizon"):
        return f"{name} {q} {duration(now - epoch)}"
    return f"{name} {q}"


def render_info(s: dict, config_note: str = "") -> bytes:
    """Text of the info file from a status dict (as :func:`formats.status.decode_status`
    gives); *config_note*: what the ``cfg`` line says of a rejected configuration (where
    and what; :mod:`pygnc.config_source`)."""

    def qname(v: object) -> str:
        return ESTIMATE_QUALITY[v] if isinstance(v, int) and 0 <= v < len(ESTIMATE_QUALITY) else "?"

    def norm(v: Iterable[float]) -> float:
        return math.sqrt(sum(x * x for x in v))

    flags = s["flags"]
    now = s["t_sc_s"]
    up = s["uptime_s"]
    sc = f"{now:.0f}" if math.isfinite(now) and 0 <= now < 1e10 else _num(now)
    head = [
        f"pygnc r{s['run']} up{_count(round(up)) if math.isfinite(up) else '-'}s sc{sc}"
        + (" STOP" if flags & FLAG_STOPPING else "")
    ]
    # Each line: its head and its optional parts; the parts give way, in GIVE_WAY's order, only
    # when the lines would not leave the cfg line its shortest words (extreme statuses).
    q = qname(s["orbit_quality"])
    orb = [_estimate("orb", q, s["orbit_t_sc_s"], now, _num(norm(s["orbit_sigma_r_m"]), "m"))]
    orb.append(": no fix" if q == "none" and flags & FLAG_NO_VALID_FIX else "")
    orb.append(f" fix {_count(s['fixes_valid'])}/{_count(s['fixes_total'])}")
    q = qname(s["att_quality"])
    sigma_deg = math.degrees(norm(s["att_sigma_rad"]))
    if q == "rates_only":
        rate = math.degrees(norm(s["att_rate_body_rad_s"]))
        att = [f"att rates only {_num(rate)}deg/s"]
    elif q == "uncertain" and sigma_deg > ATT_UNKNOWN_SIGMA_DEG:  # (NaN is not past it)
        att = [f"att unknown >{ATT_UNKNOWN_SIGMA_DEG:.0f}deg"]
    else:
        att = [_estimate("att", q, s["att_t_sc_s"], now, _num(sigma_deg, "deg"))]
    age = now - s["att_meas_t_sc_s"]
    att.append(
        f" data {duration(age)} ago" if q != "none" and math.isfinite(age) and age >= ATT_DATA_AGE_SHOWN_S else ""
    )
    att.append(" no pos" if q != "none" and flags & FLAG_ATT_NO_POSITION else "")
    peers = [k for k in range(MAX_PEERS) if s[f"peer{k}_id"]]
    n_ok = sum(qname(s[f"peer{k}_quality"]) == "ok" for k in peers)
    worst = max(norm(s[f"peer{k}_sigma_dr_m"]) for k in peers) if peers else math.nan
    frm = [f"frm {n_ok}/{len(peers)} {_num(worst, 'm')}", ""]
    acq = [
        (s[f"peer{k}_acq_s"], s[f"peer{k}_acq_window_s"]) for k in peers if qname(s[f"peer{k}_quality"]) == "acquiring"
    ]
    amb = [s[f"peer{k}_ambiguity_m"] for k in peers if qname(s[f"peer{k}_quality"]) == "ambiguous"]
    if acq:
        done, window = min(acq)  # (no window: a start on one pair of fixes, not yet confirmed)
        frm[1] = f" acq{min(int(done) // 60, 999)}/{min(int(window) // 60, 999)}m" if window > 0 else " acq"
    elif amb:
        frm[1] = f" amb{_distance(max(amb))}"
    states = [
        TASK_STATES[s[f"task{k}_state"]] if s[f"task{k}_state"] < len(TASK_STATES) else "?"
        for k in range(MAX_TASKS)
        if s[f"task{k}_id"]
    ]
    restarts = sum(s[f"task{k}_restarts"] for k in range(MAX_TASKS) if s[f"task{k}_id"])
    tsk = [f"tsk {states.count('stopped' if flags & FLAG_STOPPING else 'running')}/{len(states)} rst{_count(restarts)}"]
    tsk += [
        " FAIL" if flags & FLAG_TASK_FAILED else "",
        " WF" if flags & FLAG_WRITE_FAILED else "",
        " LL" if flags & FLAG_LOGS_LIMITED else "",
        " DF" if flags & FLAG_DOWNLINK_FAILED else "",
        " DH" if s.get("batch_records_held", 0) else "",
        " NI" if s.get("home_free_inodes", 1) == 0 else "",
    ]
    lines = [
        head,
        orb,
        att,
        frm,
        tsk,
        [f"in {_count(s['sense_records'])} rec {_count(s['sense_records_skipped'])} bad"],
    ]
    rejected, reflection = bool(flags & FLAG_CONFIG_REJECTED), bool(flags & FLAG_IMU_REFLECTION)
    cfg_room = len(cfg_line(rejected, reflection, "", 0, shortest=True)) + 1 if rejected or reflection else 0
    for i, j in GIVE_WAY:
        if sum(len("".join(parts)) + 1 for parts in lines) <= MAX_BYTES - cfg_room:
            break
        lines[i][j] = ""
    text = ("\n".join("".join(parts) for parts in lines) + "\n").encode("ascii", "replace")
    if len(text) > MAX_BYTES:  # cannot happen with the widths above (tested); a safety net
        text = text[: MAX_BYTES - 1] + b"\n"
    if rejected or reflection:
        line = cfg_line(rejected, reflection, config_note, MAX_BYTES - len(text) - 1)
        if line:
            text += line.encode("ascii", "replace") + b"\n"
    return text


#: The short words of the ``cfg`` line when even its words do not fit (the other lines at
#: their widest).
_CFG_SHORT = {"on defaults": "dflt", "on last accepted": "last", "rejected": "rej", "imu reflection": "refl"}


def cfg_line(rejected: bool, reflection: bool, note: str, room: int, shortest: bool = False) -> str:
    """The ``cfg`` line in at most *room* characters: what the run uses and the reflection
    flag are kept whole, the refused file's problem (*note*: ``<file>:<line> <key>, on
    <what>``, :mod:`pygnc.config_source`) takes what room is left - without the file's name
    (``line 12 <key>``), then cut with ``..``, then left out; with less room still, the short
    words ``cfg rej dflt; refl``, then ``cfg rej; refl``."""
    note = " ".join(note.split())
    problem, sep, uses = note.rpartition(", on ")
    problem, uses = (problem, "on " + uses) if sep else (note, "")
    if rejected:
        head = "cfg rejected"
        tail = (f", {uses}" if uses else "") + ("; imu reflection" if reflection else "")
        # the key says more than the file's name (the uplinked file is pygnc_config.toml)
        where, _, key = problem.partition(" ")
        short = f"line {where.rpartition(':')[2]} {key}" if ":" in where and key else problem
        keep = room - len(head) - 1 - len(tail) - len("..")
        candidates = [
            f"{head} {problem}{tail}" if problem else head + tail,
            f"{head} {short}{tail}",
            f"{head} {short[:keep]}..{tail}" if problem and keep >= 6 else head + tail,
            head + tail,
            " ".join(w for w in ("cfg rej", _CFG_SHORT.get(uses, "")) if w) + ("; refl" if reflection else ""),
            "cfg rej" + ("; refl" if reflection else ""),
        ]
    else:
        candidates = ["cfg imu reflection", "cfg refl"]
    if shortest:
        return candidates[-1]
    fits = [c for c in candidates if len(c) <= room]
    return fits[0] if fits else candidates[-1][:room] if room > len("cfg") else ""
