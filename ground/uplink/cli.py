"""``python -m ground uplink``: write a spacecraft's partner priors (``pygnc_config.toml``).

Range-only navigation needs a prior of each partner's orbit (``formation_peer_priors`` of
:class:`pygnc.config.Config`).  This command makes them on the ground, for one epoch (the
operator's ``--epoch-utc``, near when the spacecraft will first range), as absolute states
(``t_gps_s``, ``pos_ecef_m``, ``vel_ecef_m_s``) with a 6x6 RTN covariance (``cov_rtn``), an
isotropic fallback (``sigma_pos_m``, ``sigma_vel_m_s``: the largest axis of each block),
``wrong_side_probability`` and ``source``:

* ``--tle FILE --self NORAD --partner 0x4B=NORAD ...``: SGP4 (:mod:`ground.uplink.tle`) with the
  TLE of each partner nearest the epoch, TEME -> ECEF, and the covariance of
  :mod:`ground.uplink.tle_covariance`; the own spacecraft's TLE checks epochs and separations and
  gives the predicted range.
* ``--downlink 0x4B=DIR ...``: the partner's own downlinked orbit estimates
  (:mod:`ground.uplink.orbit_records`), carried to the epoch by :mod:`ground.uplink.orbit_prediction`.
* Both for one partner: the downlink makes the prior, and the TLE must agree with it
  (within the 99.9 % bound of both covariances) - a disagreement is refused: one of the
  two is not that partner's.

The file's bytes are checked by the flight's own check of an uplinked configuration
(:func:`pygnc.config.parse_config`: size, encoding, syntax, every key) before they are
written, atomically: a result the flight would reject is not written.  An existing
``--out`` is refused unless ``--merge`` (keep its other keys, replace these partners'
priors, keep other partners') or ``--force`` (replace the file).  Stale or inconsistent
inputs are refused with a message and exit status 2.
"""

from __future__ import annotations

import argparse
import math
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: chi-square 99.9 % bound, 6 degrees of freedom (the TLE / downlink consistency check).
CHI2_6DOF_999 = 22.458
#: Downlinked estimates that one orbit fits worse than this (RMS, m) are refused: a reset, a
#: manoeuvre or another spacecraft's records (a day's arc of one orbit fits to ~50 m).
MAX_FIT_RMS_M = 1000.0


class Refused(Exception):
    """An input the uplink will not use; the message says why (exit status 2)."""


@dataclass
class PartnerPrior:
    peer_id: int
    t_gps_s: float
    r_ecef_m: np.ndarray
    v_ecef_m_s: np.ndarray
    cov_rtn: np.ndarray
    wrong_side_probability: float
    source: str
    age_h: float
    detail: str
    r_gcrs_m: np.ndarray | None = None
    v_gcrs_m_s: np.ndarray | None = None
    #: What the inputs' readers noticed (printed, not fatal).
    notes: list = field(default_factory=list)
    #: The error's heavy tail: with this probability drawn from cov_rtn times tail_scale^2.
    tail_probability: float = 0.0
    tail_scale: float = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--epoch-utc",
        required=True,
        metavar="ISO8601",
        help="epoch of the priors, UTC (e.g. 2025-03-20T06:00:00Z): near the first range",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="the pygnc_config.toml to write")
    parser.add_argument(
        "--spacecraft-id",
        metavar="ID",
        help="radio id of the spacecraft this file is for, e.g. 0x4A: its spacecraft_id (needed for a new file)",
    )
    parser.add_argument("--tle", type=Path, metavar="FILE", help="TLE file (two- or three-line sets, any number)")
    parser.add_argument(
        "--self",
        dest="self_norad",
        type=int,
        metavar="NORAD",
        help="catalogue number of the spacecraft this file is for (with --tle)",
    )
    parser.add_argument(
        "--partner",
        action="append",
        default=[],
        metavar="ID=NORAD",
        help="a partner's radio id and catalogue number, e.g. 0x4B=99002 (repeatable)",
    )
    parser.add_argument(
        "--downlink",
        action="append",
        default=[],
        metavar="ID=DIR",
        help="a partner's radio id and its downlinked batch files or 'ground decode' output (repeatable)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--merge", action="store_true", help="keep the other keys (and other partners' priors) of an existing --out"
    )
    mode.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument(
        "--wrong-side-probability",
        type=float,
        default=0.2,
        metavar="P",
        help="probability that a TLE prior has the partner on the wrong side, e.g. another "
        "object's TLE (0-0.5; default 0.2, the flight's own default, while the partners' "
        "identities are not confirmed); downlink priors: 0",
    )
    parser.add_argument(
        "--max-tle-age-h",
        type=float,
        default=72.0,
        metavar="H",
        help="refuse a TLE whose epoch is further than this from --epoch-utc (default 72)",
    )
    parser.add_argument(
        "--max-separation-km",
        type=float,
        default=100.0,
        metavar="KM",
        help="refuse a partner further than this from the own spacecraft (default 100)",
    )
    parser.add_argument(
        "--max-downlink-age-h",
        type=float,
        default=48.0,
        metavar="H",
        help="refuse downlinked estimates all further than this from --epoch-utc (default 48)",
    )
    parser.add_argument(
        "--fit-span-h",
        type=float,
        default=24.0,
        metavar="H",
        help="arc of downlinked estimates the drag is fitted to (default 24)",
    )
    parser.add_argument(
        "--dut1-s", type=float, default=0.0, metavar="S", help="UT1 - UTC for TEME -> ECEF (IERS Bulletin A; default 0)"
    )
    parser.add_argument(
        "--polar-motion-arcsec",
        type=float,
        nargs=2,
        default=(0.0, 0.0),
        metavar=("XP", "YP"),
        help="pole coordinates for TEME -> ECEF (IERS Bulletin A; default 0 0)",
    )


def _peer_id(text: str, what: str = "") -> int:
    from pygnc.config import peer_id_key

    try:
        return peer_id_key(text)
    except ValueError as exc:
        raise Refused(f"{what}{exc}") from None


def _pairs(items: list[str], what: str) -> list[tuple[int, str]]:
    out = []
    for item in items:
        if "=" not in item:
            raise Refused(f"{what} needs ID=VALUE (e.g. 0x4B=...), got {item!r}")
        k, v = item.split("=", 1)
        out.append((_peer_id(k), v.strip()))
    seen = set()
    for k, _ in out:
        if k in seen:
            raise Refused(f"partner 0x{k:02X} given twice in {what}")
        seen.add(k)
    return out


def _epoch_gps_s(text: str) -> float:
    import datetime as dt

    from pygnc.timebase import gps_from_utc_unix

    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Refused(f"--epoch-utc: not an ISO 8601 time: {text!r} (e.g. 2025-03-20T06:00:00Z)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return float(gps_from_utc_unix(t.timestamp()))


def _sig(v: float, unit: str) -> str:
    if unit == "m" and v >= 1000.0:
        return f"{v / 1000.0:.3g} km"
    return f"{v:.3g} {unit}"


def _sigma_text(cov: np.ndarray) -> str:
    s = np.sqrt(np.diag(cov))
    return (
        f"sigma pos R/T/N {' / '.join(_sig(x, 'm') for x in s[:3])}, "
        f"vel R/T/N {' / '.join(_sig(x, 'm/s') for x in s[3:])}"
    )


# --------------------------------------------------------------------------- TLE mode
def _tle_state(tle, t_gps_s: float, eop: tuple[float, float, float]):
    from ground.uplink import tle as tl
    from ground.uplink.tle_covariance import tle_covariance_rtn

    r_t, v_t = tl.sgp4_teme(tle, t_gps_s)
    r_e, v_e = tl.teme_to_itrs(r_t, v_t, t_gps_s, *eop)
    return r_e, v_e, tle_covariance_rtn(tle, t_gps_s)


def _gcrs(r_e, v_e, t_gps_s: float):
    from pygnc import frames

    r, v = frames.itrs_to_gcrs(np.asarray(r_e), np.asarray(v_e), t_gps_s)
    return np.asarray(r), np.asarray(v)


def _pick_tle(sets, norad: int, t_gps_s: float, max_age_h: float, role: str, tle_path: Path):
    from ground.uplink import tle as tl

    tle = tl.select_tle(sets, norad, t_gps_s)
    if tle is None:
        have = sorted({s.norad for s in sets})
        raise Refused(f"{tle_path}: no TLE of NORAD {norad} ({role}); the file has {have}")
    age_h = (t_gps_s - tle.epoch_gps_s) / 3600.0
    if abs(age_h) > max_age_h:
        raise Refused(
            f"{tle.where}: the TLE of NORAD {norad} ({role}) has epoch {tl.utc_iso(tle.epoch_gps_s)}, "
            f"{age_h:+.1f} h from --epoch-utc: older than --max-tle-age-h {max_age_h:g}"
        )
    return tle, age_h


def tle_priors(args, t_epoch: float, partners: list[tuple[int, int]]) -> tuple[dict, list[PartnerPrior]]:
    """Self state (dict) and the TLE priors of *partners* [(peer id, NORAD)], with the TLE
    error model's tail (:class:`ground.uplink.tle_covariance.TleErrorModel`)."""
    from ground.uplink import tle as tl
    from ground.uplink.tle_covariance import TleErrorModel

    try:
        sets = tl.load_tle_file(args.tle)
    except tl.TleError as exc:
        raise Refused(str(exc)) from None
    except OSError as exc:
        raise Refused(f"{args.tle}: {exc.strerror or exc}") from None
    eop = (args.dut1_s, *args.polar_motion_arcsec)
    self_tle, self_age = _pick_tle(sets, args.self_norad, t_epoch, args.max_tle_age_h, "--self", args.tle)
    try:
        r_s, v_s, cov_s = _tle_state(self_tle, t_epoch, eop)
    except tl.TleError as exc:
        raise Refused(str(exc)) from None
    self_state = {
        "norad": args.self_norad,
        "tle": self_tle,
        "age_h": self_age,
        "r_ecef_m": r_s,
        "v_ecef_m_s": v_s,
        "cov_rtn": cov_s,
    }
    out = []
    for peer, norad in partners:
        if norad == args.self_norad:
            raise Refused(f"partner 0x{peer:02X}: NORAD {norad} is the own spacecraft's (--self)")
        tle, age_h = _pick_tle(sets, norad, t_epoch, args.max_tle_age_h, f"partner 0x{peer:02X}", args.tle)
        try:
            r_e, v_e, cov = _tle_state(tle, t_epoch, eop)
        except tl.TleError as exc:
            raise Refused(str(exc)) from None
        name = f" ({tle.name})" if tle.name else ""
        src = f"TLE {norad} epoch {tl.utc_iso(tle.epoch_gps_s)[:16]}Z age {age_h:+.1f} h"
        out.append(
            PartnerPrior(
                peer,
                t_epoch,
                r_e,
                v_e,
                cov,
                args.wrong_side_probability,
                src,
                age_h,
                f"TLE of NORAD {norad}{name}, epoch {tl.utc_iso(tle.epoch_gps_s)}, age {age_h:+.1f} h",
                *_gcrs(r_e, v_e, t_epoch),
                tail_probability=TleErrorModel().tail_probability,
                tail_scale=TleErrorModel().tail_scale,
            )
        )
    return self_state, out


# --------------------------------------------------------------------------- downlink mode
def downlink_prior(args, t_epoch: float, peer: int, path: str) -> PartnerPrior:
    from ground.uplink import orbit_prediction as op
    from ground.uplink import tle as tl
    from ground.uplink.orbit_records import RecordError, read_orbit_records
    from pygnc.estimation.tunables import FormationFilterConfig

    try:
        rec = read_orbit_records(path, peer)
    except RecordError as exc:
        raise Refused(f"partner 0x{peer:02X}: {exc}") from None
    except OSError as exc:
        raise Refused(f"partner 0x{peer:02X}: {path}: {exc.strerror or exc}") from None
    if rec.size == 0:
        why = f" ({rec.skipped_untimed} without GPS time: no clock map in their run)" if rec.skipped_untimed else ""
        raise Refused(f"partner 0x{peer:02X}: {path}: no usable orbit estimate{why}")
    gap_h = float(np.min(np.abs(rec.t_gps_s - t_epoch))) / 3600.0
    if gap_h > args.max_downlink_age_h:
        raise Refused(
            f"partner 0x{peer:02X}: {path}: its estimates span {tl.utc_iso(rec.t_gps_s[0])} - "
            f"{tl.utc_iso(rec.t_gps_s[-1])}, {gap_h:.1f} h from --epoch-utc at the nearest: further than "
            f"--max-downlink-age-h {args.max_downlink_age_h:g}"
        )
    model = op.PredictionModel(
        ballistic_coeff_kg_m2=FormationFilterConfig().peer_ballistic_coeff_kg_m2, fit_span_s=args.fit_span_h * 3600.0
    )
    try:
        p = op.fit_and_predict(
            rec.t_gps_s, rec.r_ecef_m, rec.v_ecef_m_s, rec.sigma_r_m, rec.sigma_v_m_s, t_epoch, model
        )
    except np.linalg.LinAlgError:
        raise Refused(
            f"partner 0x{peer:02X}: {path}: its {rec.t_gps_s.size} orbit estimates near the epoch do not "
            "determine an orbit (too few, or all at one time)"
        ) from None
    if not p.fit_rms_m <= MAX_FIT_RMS_M:
        raise Refused(
            f"partner 0x{peer:02X}: {path}: one orbit fits its {p.n_records} estimates of "
            f"{tl.utc_iso(p.arc_start_gps_s)} - {tl.utc_iso(p.arc_end_gps_s)} to "
            f"{p.fit_rms_m / 1000.0:.1f} km RMS (more than {MAX_FIT_RMS_M / 1000.0:g} km): a reset, a "
            "manoeuvre or records of more than one spacecraft - look at them ('ground decode') before "
            "uplinking from them"
        )
    age_h = (t_epoch - p.anchor_gps_s) / 3600.0
    anchor = tl.utc_iso(p.anchor_gps_s)
    src = f"downlink 0x{peer:02X} estimate {anchor[:16]}Z age {age_h:+.1f} h, drag x{p.drag_scale:.2f}"
    skipped = f"; {rec.skipped_untimed} without GPS time left out" if rec.skipped_untimed else ""
    files = f"{rec.n_files} file{'s' if rec.n_files != 1 else ''}"
    detail = (
        f"downlink {path}: {rec.size} orbit estimates in {files}{skipped}; carried from {anchor} "
        f"({age_h:+.1f} h), drag scale {p.drag_scale:.2f} +- {p.drag_scale_sigma:.2f} fitted to "
        f"{p.n_records} estimates over {(p.arc_end_gps_s - p.arc_start_gps_s) / 3600.0:.1f} h "
        f"(RMS {p.fit_rms_m:.1f} m)"
    )
    prior = PartnerPrior(
        peer, t_epoch, p.r_ecef_m, p.v_ecef_m_s, p.cov_rtn, 0.0, src, age_h, detail, p.r_gcrs_m, p.v_gcrs_m_s
    )
    prior.notes = list(rec.problems)
    return prior


def _check_against_tle(prior: PartnerPrior, tle_prior: PartnerPrior) -> str:
    """The downlink prior against the partner's TLE: refused beyond the 99.9 % bound."""
    from ground.uplink.tle_covariance import rtn_axes

    axes = rtn_axes(prior.r_gcrs_m, prior.v_gcrs_m_s)
    rot = np.zeros((6, 6))
    rot[0:3, 0:3] = rot[3:6, 3:6] = axes
    d = rot @ np.concatenate([tle_prior.r_gcrs_m - prior.r_gcrs_m, tle_prior.v_gcrs_m_s - prior.v_gcrs_m_s])
    # The TLE covariance is in its own state's axes: the same to ~1e-4 rad at these distances.
    # A TLE error within its heavy tail is no disagreement: only one past the tail is refused.
    c = prior.cov_rtn + tle_prior.cov_rtn * tle_prior.tail_scale**2
    nees = float(d @ np.linalg.solve(c, d))
    text = f"{tle_prior.detail.split(',')[0]} agrees: {np.linalg.norm(d[:3]) / 1000.0:.2f} km apart, NEES {nees:.1f}"
    if nees > CHI2_6DOF_999:
        raise Refused(
            f"partner 0x{prior.peer_id:02X}: its downlinked orbit and the {tle_prior.detail.split(',')[0]} "
            f"disagree: {np.linalg.norm(d[:3]) / 1000.0:.2f} km apart (R/T/N {d[0] / 1e3:+.2f} / "
            f"{d[1] / 1e3:+.2f} / {d[2] / 1e3:+.2f} km), NEES {nees:.0f} > {CHI2_6DOF_999} with both "
            "covariances: one of them is not this partner's (uplink from one source only)"
        )
    return text


def _predicted_range(p: PartnerPrior, self_state: dict) -> tuple[float, float]:
    """Range from the own spacecraft's TLE state to the prior, and its 1-sigma from both
    covariances along the line of sight, m."""
    from ground.uplink.tle_covariance import rtn_axes

    r_s, v_s = _gcrs(self_state["r_ecef_m"], self_state["v_ecef_m_s"], p.t_gps_s)
    los = p.r_gcrs_m - r_s
    d = float(np.linalg.norm(los))
    u = los / d if d > 0 else np.zeros(3)
    var = 0.0
    for cov, (r, v) in ((p.cov_rtn, (p.r_gcrs_m, p.v_gcrs_m_s)), (self_state["cov_rtn"], (r_s, v_s))):
        w = rtn_axes(r, v) @ u
        var += float(w @ cov[:3, :3] @ w)
    return d, math.sqrt(var)


# --------------------------------------------------------------------------- output
def _prior_table(p: PartnerPrior) -> dict:
    cov = 0.5 * (p.cov_rtn + p.cov_rtn.T)
    return {
        "t_gps_s": float(p.t_gps_s),
        "pos_ecef_m": [float(c) for c in p.r_ecef_m],
        "vel_ecef_m_s": [float(c) for c in p.v_ecef_m_s],
        "sigma_pos_m": float(math.sqrt(np.linalg.eigvalsh(cov[:3, :3]).max())),
        "sigma_vel_m_s": float(math.sqrt(np.linalg.eigvalsh(cov[3:, 3:]).max())),
        "cov_rtn": [float(c) for c in cov.ravel()],
        "wrong_side_probability": float(p.wrong_side_probability),
        **(
            {"tail_probability": float(p.tail_probability), "tail_scale": float(p.tail_scale)}
            if p.tail_probability > 0
            else {}
        ),
        "source": p.source[:120],
    }


def _huge_integer(value, key: str = "") -> tuple[str, int] | None:
    """(dotted key, digits) of the first integer in the TOML data *value* that no
    configuration value can hold (beyond a float's range), or None."""
    if isinstance(value, dict):
        items = ((f"{key}.{k}" if key else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{key}[{i}]", v) for i, v in enumerate(value))
    else:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 1e300:
            return key, len(str(abs(value))) if abs(value).bit_length() < 10000 else abs(value).bit_length() // 3
        return None
    for k, v in items:
        found = _huge_integer(v, k)
        if found is not None:
            return found
    return None


def build_document(
    priors: list[PartnerPrior], out: Path, merge: bool, spacecraft_id: int | None = None
) -> tuple[dict, list[int]]:
    """The TOML data to write (existing keys kept with *merge*) and the partner ids whose
    earlier priors were kept.  A new file is a whole configuration: the spacecraft's
    ``spacecraft_id`` (which its batch files carry) and ``range_gps_source = "own"`` (the
    priors are used only then) before the priors."""
    from pygnc.config import peer_id_key

    data: dict = {}
    if not (merge and out.exists()):
        if spacecraft_id is None:
            raise Refused(
                "a new file needs --spacecraft-id ID, the radio id of the spacecraft it is for (e.g. 0x4A): "
                "without it the spacecraft's batch files carry id 0 and are refused later as a prior source"
            )
        data = {"spacecraft_id": spacecraft_id, "range_gps_source": "own"}
    if merge and out.exists():
        try:
            with open(out, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError, RecursionError) as exc:
            raise Refused(f"--merge: {out} cannot be read as TOML ({exc}); fix or replace it (--force)") from None
        except UnicodeDecodeError as exc:
            raise Refused(
                f"--merge: {out} is not a text file (byte {exc.start} is not UTF-8); fix or replace it (--force)"
            ) from None
    huge = _huge_integer(data)
    if huge is not None:
        raise Refused(
            f"--merge: {out}: {huge[0]} is an integer of {huge[1]} digits, beyond any configuration value's "
            "range; fix or replace the file (--force)"
        )
    if spacecraft_id is not None:
        had = data.get("spacecraft_id", spacecraft_id)
        if had != spacecraft_id:
            raise Refused(
                f"--merge: {out} is the configuration of spacecraft_id {had!r}, not of --spacecraft-id "
                f"0x{spacecraft_id:02X} ({spacecraft_id}): another spacecraft's file (--force replaces it)"
            )
        data = {"spacecraft_id": spacecraft_id, **data}
    for p in priors:
        if p.peer_id == data.get("spacecraft_id"):
            raise Refused(f"partner 0x{p.peer_id:02X} is the spacecraft this file is for (its spacecraft_id)")
    old = data.get("formation_peer_priors", {})
    if not isinstance(old, dict):
        raise Refused(f"--merge: formation_peer_priors in {out} is not a table")
    table = {}
    for k, v in old.items():
        try:
            table[f"0x{peer_id_key(k):02X}"] = v
        except ValueError as exc:
            raise Refused(f"--merge: {out}: {exc}") from None
    kept = sorted(peer_id_key(k) for k in table if peer_id_key(k) not in {p.peer_id for p in priors})
    for p in priors:
        table[f"0x{p.peer_id:02X}"] = _prior_table(p)
    data["formation_peer_priors"] = table
    return data, kept


def render(data: dict, epoch_text: str) -> str:
    import tomli_w

    head = (
        "# pygnc configuration: partner priors written by 'python -m ground uplink' for epoch "
        f"{epoch_text}.\n# cov_rtn: 6x6 covariance (m, m/s) of position and inertial velocity in the "
        "radial / along-track / cross-track axes\n# of the partner's GCRS state at t_gps_s "
        "(docs/uplink.md).\n# Top-level keys go above the first [table] header: a key written below a header "
        "belongs to that table.\n"
    )
    return head + tomli_w.dumps(data)


def validate(text: str, out: Path, priors: list[PartnerPrior], merged: bool = False):
    """The flight's own loader on the bytes to be written (its size bound, parser and checks:
    :func:`pygnc.config.parse_config`): the Config, or Refused."""
    from pygnc.config import ConfigError, parse_config

    try:
        cfg = parse_config(text.encode(), f"{out} with these priors merged" if merged else str(out))
    except ConfigError as exc:
        hint = f" (--merge keeps {out}'s other keys and priors: remove those not needed, or --force)" if merged else ""
        raise Refused(
            f"the flight configuration loader rejects the result: {'; '.join(exc.lines())} - nothing written{hint}"
        ) from None
    for p in priors:
        got = cfg.formation_peer_priors.get(p.peer_id)
        if got is None or got["frame"] != "ecef" or got["cov_rtn"] is None:
            raise Refused(f"the flight configuration loader did not read the prior of 0x{p.peer_id:02X} back")
    return cfg


# --------------------------------------------------------------------------- command
def _plan(args) -> tuple[float, list[tuple[int, int]], list[tuple[int, str]]]:
    t_epoch = _epoch_gps_s(args.epoch_utc)
    tle_partners = _pairs(args.partner, "--partner")
    downlinks = _pairs(args.downlink, "--downlink")
    if not tle_partners and not downlinks:
        raise Refused("no partner: give --partner ID=NORAD (with --tle and --self) and/or --downlink ID=DIR")
    parsed = []
    for k, v in tle_partners:
        try:
            parsed.append((k, int(v)))
        except ValueError:
            raise Refused(f"--partner 0x{k:02X}={v}: not a NORAD catalogue number") from None
    if (parsed or args.self_norad is not None) and args.tle is None:
        raise Refused("--partner and --self need --tle FILE")
    if args.tle is not None and args.self_norad is None:
        raise Refused("--tle needs --self NORAD (the spacecraft this file is for)")
    if not 0.0 <= args.wrong_side_probability <= 0.5:
        raise Refused(f"--wrong-side-probability must be in [0, 0.5], got {args.wrong_side_probability}")
    for name in ("max_tle_age_h", "max_separation_km", "max_downlink_age_h", "fit_span_h"):
        v = getattr(args, name)
        if not (math.isfinite(v) and v > 0):
            raise Refused(f"--{name.replace('_', '-')} must be > 0, got {v}")
    return t_epoch, parsed, downlinks


def run(args) -> int:
    from ground.uplink import tle as tl
    from pygnc.atomic import write_atomic

    say = print
    try:
        t_epoch, tle_partners, downlinks = _plan(args)
        spacecraft_id = None if args.spacecraft_id is None else _peer_id(args.spacecraft_id, "--spacecraft-id: ")
        out: Path = args.out
        if out.exists() and not (args.merge or args.force):
            raise Refused(f"{out} exists: --merge keeps its other keys and replaces these priors, --force replaces it")
        if not out.parent.is_dir():
            raise Refused(f"{out.parent}: no such directory")
        self_state, tle_list = tle_priors(args, t_epoch, tle_partners) if args.tle is not None else (None, [])
        by_tle = {p.peer_id: p for p in tle_list}
        priors: list[PartnerPrior] = []
        checks: dict[int, str] = {}
        for peer, path in downlinks:
            p = downlink_prior(args, t_epoch, peer, path)
            if peer in by_tle:
                checks[peer] = _check_against_tle(p, by_tle.pop(peer))
            priors.append(p)
        priors = sorted(list(by_tle.values()) + priors, key=lambda p: p.peer_id)
        ranges = {}
        if self_state is not None:
            for p in priors:
                d, sd = _predicted_range(p, self_state)
                if not d <= args.max_separation_km * 1000.0:  # (NaN: refused too)
                    raise Refused(
                        f"partner 0x{p.peer_id:02X} is {d / 1000.0:.1f} km from the own spacecraft (NORAD "
                        f"{self_state['norad']}) at the epoch: more than --max-separation-km "
                        f"{args.max_separation_km:g} - not a formation partner, or a wrong NORAD id"
                    )
                ranges[p.peer_id] = (d, sd)
        new_file = not (args.merge and out.exists())
        data, kept = build_document(priors, out, args.merge, spacecraft_id)
        text = render(data, tl.utc_iso(t_epoch))
        cfg = validate(text, out, priors, merged=not new_file)
        write_atomic(out, text.encode())
    except Refused as exc:
        print(f"uplink: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"uplink: {exc.filename or args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    say(
        f"wrote {out}: {len(priors)} partner prior{'s' if len(priors) != 1 else ''} at {tl.utc_iso(t_epoch)} "
        f"(GPS {t_epoch:.0f} s)"
    )
    if new_file:
        say(
            f"  a new configuration: spacecraft_id = {cfg.spacecraft_id} (0x{cfg.spacecraft_id:02X}), "
            "range_gps_source = 'own'"
        )
    if self_state is not None:
        st = self_state["tle"]
        say(
            f"  own spacecraft: TLE of NORAD {self_state['norad']}, epoch {tl.utc_iso(st.epoch_gps_s)}, "
            f"age {self_state['age_h']:+.1f} h"
        )
    for p in priors:
        say(f"  0x{p.peer_id:02X}  {p.detail}")
        extra = (
            (
                f"; predicted range from the own spacecraft {ranges[p.peer_id][0] / 1000.0:.3f} km "
                f"(1 sigma {_sig(ranges[p.peer_id][1], 'm')})"
            )
            if p.peer_id in ranges
            else ""
        )
        say(f"        {_sigma_text(p.cov_rtn)}")
        tail = f", tail {p.tail_probability:g} at {p.tail_scale:g} sigma" if p.tail_probability > 0 else ""
        say(f"        wrong side {p.wrong_side_probability:g}{tail}{extra}")
        if p.peer_id in checks:
            say(f"        {checks[p.peer_id]}")
        for note in p.notes:
            say(f"        ! {note}")
    if kept:
        say(f"  kept from the earlier file: priors of {', '.join(f'0x{k:02X}' for k in kept)}")
    if cfg.spacecraft_id == 0:
        say(
            f"  note: {out} has no spacecraft_id: the spacecraft's batch files will carry id 0, which the ground "
            "refuses as a prior source (--spacecraft-id ID sets it)"
        )
    if cfg.range_gps_source != "own":
        say(f"  note: range_gps_source is {cfg.range_gps_source!r} in this file: the priors are used only with 'own'")
    return 0
