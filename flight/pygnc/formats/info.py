"""``~/pygnc_info.txt``: one glance of human-readable state, under 200 bytes (ASCII).

Lines (each present every time, ``-`` when unknown)::

    pygnc r<run> up<uptime>s sc<spacecraft time> [STOP]
    orb <ok sigma_m|none: reason> fix <valid>/<total>
    att <ok sigma_deg | rates only <rate>deg/s [no pos] | none>
    frm <peers with an estimate> <worst sigma_m>
    tsk <running>/<total> rst<restarts> [FAIL]
    in <records> rec <skipped> bad
"""

from __future__ import annotations

import math

MAX_BYTES = 199


def _fmt(x: float, spec: str = ".1f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def render_info(s: dict) -> bytes:
    """Text of the info file from a status dict (as :func:`formats.status.decode_status` gives)."""
    from .status import (FLAG_ATT_NO_POSITION, FLAG_ATTITUDE_VALID, FLAG_NO_VALID_FIX, FLAG_ORBIT_VALID,
                         FLAG_STOPPING, FLAG_TASK_FAILED, MAX_PEERS, MAX_TASKS, TASK_STATES)

    flags = s["flags"]
    lines = [f"pygnc r{s['run']} up{s['uptime_s']:.0f}s sc{s['t_sc_s']:.0f}"
             + (" STOP" if flags & FLAG_STOPPING else "")]
    if flags & FLAG_ORBIT_VALID:
        sig = math.sqrt(sum(v * v for v in s["orbit_sigma_r_m"]))
        orb = f"ok {_fmt(sig)}m"
    else:
        orb = "none: no fix" if flags & FLAG_NO_VALID_FIX else "none"
    lines.append(f"orb {orb} fix {s['fixes_valid']}/{s['fixes_total']}")
    if flags & FLAG_ATTITUDE_VALID:
        sig = math.degrees(math.sqrt(sum(v * v for v in s["att_sigma_rad"])))
        lines.append(f"att ok {_fmt(sig)}deg")
    elif not math.isnan(s["att_t_sc_s"]):
        rate = math.degrees(math.sqrt(sum(v * v for v in s["att_rate_body_rad_s"])))
        lines.append(f"att rates only {_fmt(rate, '.2f')}deg/s" + (" no pos" if flags & FLAG_ATT_NO_POSITION else ""))
    else:
        lines.append("att none")
    peers = [k for k in range(MAX_PEERS) if s[f"peer{k}_id"]]
    worst = max((math.sqrt(sum(v * v for v in s[f"peer{k}_sigma_dr_m"]))) for k in peers) if peers else math.nan
    lines.append(f"frm {len(peers)} {_fmt(worst)}m")
    states = [TASK_STATES[s[f"task{k}_state"]] if s[f"task{k}_state"] < len(TASK_STATES) else "?"
              for k in range(MAX_TASKS) if s[f"task{k}_id"]]
    restarts = sum(s[f"task{k}_restarts"] for k in range(MAX_TASKS) if s[f"task{k}_id"])
    lines.append(f"tsk {states.count('running')}/{len(states)} rst{restarts}"
                 + (" FAIL" if flags & FLAG_TASK_FAILED else ""))
    lines.append(f"in {s['sense_records']} rec {s['sense_records_skipped']} bad")
    text = ("\n".join(lines) + "\n").encode("ascii", "replace")
    if len(text) > MAX_BYTES:
        text = text[:MAX_BYTES - 1] + b"\n"
    return text
