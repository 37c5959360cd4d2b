"""Campaign files: what a Monte Carlo campaign runs, expanded into one spec per run.

A campaign TOML (documented in docs/interface.md, "Monte Carlo campaigns") names a base
scenario, fixed scenario overrides, dispersions of scenario settings drawn per run, the
seeds, and the estimator configurations every run is replayed with.  This module is pure:
no files but the campaign and its base scenario are read, nothing runs.

Dispersion draws are keyed by ``(run seed, setting name)`` (a CRC-32 of the name), so one
run's draw of a setting does not change when another setting's dispersion is added or the
campaign grows by more seeds, and a run is reproduced from its seed alone.  A run's spec
hash covers everything that determines its result (the resolved scenario settings, the
estimators, the settle time), so a result on disk is reused only for the same question.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ground.simulate import scenario as scn

#: Version of the campaign file layout.
CAMPAIGN_FORMAT_VERSION = 1
#: Distributions a dispersion may name, with the number of parameters each takes.
DISTRIBUTIONS = {"uniform": 2, "loguniform": 2, "normal": 2, "choice": None}
#: The keys of a campaign file, with their meaning (docs/interface.md is generated from it).
TOP_KEYS = {
    "format_version": "1 (optional)",
    "name": "campaign name (default: the file's stem); in every row and task key",
    "base_scenario": "scenario TOML the runs start from, relative to the campaign file (default: the simulator's "
    "defaults)",
    "duration": "overrides the base scenario's length: seconds or with a unit (`90m`, `3h`, `1d`)",
    "runs": "number of runs; their scenario seeds are `first_seed` … `first_seed + runs - 1`",
    "first_seed": "first scenario seed (default 1)",
    "seeds": "explicit list of scenario seeds, instead of `runs`/`first_seed`",
    "settle": "leave this first part of each run out of the statistics (default: replay's, 30 min from 3 h)",
    "nees_grid_s": "spacing of the epochs at which each run's NEES is kept for the Monte Carlo test (default 60)",
    "scenario": "table of fixed overrides for every run: dotted scenario keys as `simulate --set` "
    '(`"sensors.gyro_noise_deg_s" = 0.05`), or nested tables',
    "dispersions": "table of dotted scenario keys -> `{ uniform = [low, high] }`, `{ loguniform = [low, high] }`, "
    "`{ normal = [mean, sigma] }` or `{ choice = [v1, v2, …] }`; lists of numbers for vector settings",
    "estimators": "`[[estimators]]` tables: `name` (letters, digits, `-_.`), `config` (flight configuration "
    "keys laid over the scenario's `pygnc_config.toml`), `smooth` (true: the ground RTS smoothers, "
    "as `replay --smooth`); default one named `default` with no overrides",
}
ESTIMATOR_KEYS = {"name", "config", "smooth"}
#: Seconds between the epochs at which each run's NEES is kept for the Monte Carlo test.
DEFAULT_NEES_GRID_S = 60.0


class CampaignError(ValueError):
    """A campaign file that cannot be used (the message says where and why)."""


@dataclass(frozen=True)
class Estimator:
    """One estimator configuration: flight ``config`` overrides laid over the scenario's own
    ``pygnc_config.toml``; ``smooth`` replays with the ground smoothers (``replay --smooth``)."""

    name: str
    config: dict = field(default_factory=dict)
    smooth: bool = False


@dataclass(frozen=True)
class Dispersion:
    key: str
    kind: str
    params: list

    def draw(self, seed: int):
        """This dispersion's value for the run with scenario seed *seed* (plain Python)."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(self.key.encode())]))
        if self.kind == "choice":
            return self.params[int(rng.integers(len(self.params)))]
        a, b = (np.asarray(p, dtype=float) for p in self.params)
        shape = np.broadcast_shapes(a.shape, b.shape)
        if self.kind == "uniform":
            v = rng.uniform(a, b, shape)
        elif self.kind == "loguniform":
            v = np.exp(rng.uniform(np.log(a), np.log(b), shape))
        else:  # normal: mean, sigma
            v = rng.normal(a, b, shape)
        return v.tolist() if shape else float(v)


@dataclass(frozen=True)
class Campaign:
    name: str
    path: Path
    base: scn.ScenarioSettings
    seeds: list[int]
    fixed: dict
    dispersions: list[Dispersion]
    estimators: list[Estimator]
    settle: str | None = None
    nees_grid_s: float = DEFAULT_NEES_GRID_S


@dataclass(frozen=True)
class RunSpec:
    """Everything one run needs (plain data: it travels to a worker)."""

    campaign: str
    run_id: str
    seed: int
    #: the run's scenario settings (``scenario.settings_to_dict``)
    scenario: dict
    #: dispersed setting -> value drawn for this run
    dispersed: dict
    estimators: list[dict]
    settle: str | None
    nees_grid_s: float
    spec_hash: str
    #: why the spec cannot run (a drawn value the settings refuse), else None
    error: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def run_id(seed: int) -> str:
    return f"s{int(seed):05d}"


def _flatten(table: dict, prefix: str, is_leaf) -> dict:
    out = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not is_leaf(v):
            out.update(_flatten(v, key + ".", is_leaf))
        else:
            out[key] = v
    return out


def _is_distribution(v) -> bool:
    return isinstance(v, dict) and len(v) == 1 and next(iter(v)) in DISTRIBUTIONS


def _parse_dispersion(key: str, spec) -> Dispersion:
    where = f"dispersions.{key}"
    if not _is_distribution(spec):
        raise CampaignError(
            f"{where}: give one of {sorted(DISTRIBUTIONS)} as a table, e.g. {{ uniform = [-8000.0, -1000.0] }}"
        )
    kind, params = next(iter(spec.items()))
    if not isinstance(params, list) or not params:
        raise CampaignError(f"{where}: {kind} takes a list")
    n = DISTRIBUTIONS[kind]
    if n is None:
        return Dispersion(key, kind, params)
    if len(params) != n:
        raise CampaignError(f"{where}: {kind} takes [{'low, high' if kind != 'normal' else 'mean, sigma'}]")
    try:
        a, b = (np.asarray(p, dtype=float) for p in params)
        np.broadcast_shapes(a.shape, b.shape)
    except (TypeError, ValueError):
        raise CampaignError(f"{where}: {kind}'s parameters must be numbers or equal-length lists") from None
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise CampaignError(f"{where}: parameters must be finite")
    if kind == "normal" and np.any(b < 0):
        raise CampaignError(f"{where}: normal's sigma must be >= 0")
    if kind in ("uniform", "loguniform") and np.any(b < a):
        raise CampaignError(f"{where}: {kind} needs low <= high")
    if kind == "loguniform" and np.any(a <= 0):
        raise CampaignError(f"{where}: loguniform needs low > 0")
    return Dispersion(key, kind, params)


def _parse_estimators(raw) -> list[Estimator]:
    if raw is None:
        return [Estimator("default")]
    if not isinstance(raw, list) or not raw:
        raise CampaignError("estimators: give one or more [[estimators]] tables")
    out = []
    for i, e in enumerate(raw):
        if not isinstance(e, dict):
            raise CampaignError(f"estimators[{i}] must be a table")
        unknown = sorted(set(e) - ESTIMATOR_KEYS)
        if unknown:
            raise CampaignError(f"estimators[{i}]: unknown keys {unknown} (known: {sorted(ESTIMATOR_KEYS)})")
        name = e.get("name")
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
            raise CampaignError(f"estimators[{i}]: a name of letters, digits, '-', '_' or '.' is needed")
        config = e.get("config", {})
        if not isinstance(config, dict):
            raise CampaignError(f"estimators[{i}] ({name}): config must be a table of flight settings")
        _check_flight_config(config, f"estimator {name!r}")
        out.append(Estimator(name, config, bool(e.get("smooth", False))))
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        raise CampaignError(f"estimators: names must differ, got {names}")
    return out


def _check_flight_config(config: dict, where: str) -> None:
    from pygnc.config import Config, with_overrides
    from pygnc.processors.attitude import attitude_filter_config
    from pygnc.processors.orbit import orbit_filter_config

    try:
        cfg = with_overrides(Config(), config, where)
        orbit_filter_config(cfg)
        attitude_filter_config(cfg)
    except (ValueError, TypeError) as exc:
        raise CampaignError(f"{where}: {exc}" if where not in str(exc) else str(exc)) from None


def _seeds(data: dict) -> list[int]:
    if "seeds" in data:
        if "runs" in data or "first_seed" in data:
            raise CampaignError("give either seeds = [...] or runs (and first_seed), not both")
        seeds = data["seeds"]
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
            raise CampaignError("seeds must be a list of integers >= 0")
        if len(set(seeds)) != len(seeds):
            raise CampaignError("seeds must not repeat")
        return list(seeds)
    runs, first = data.get("runs"), data.get("first_seed", 1)
    if not isinstance(runs, int) or runs < 1:
        raise CampaignError("runs = N (>= 1) or seeds = [...] is needed")
    if not isinstance(first, int) or first < 0:
        raise CampaignError("first_seed must be an integer >= 0")
    return list(range(first, first + runs))


def parse_campaign(data: dict, path: Path) -> Campaign:
    """A :class:`Campaign` from the parsed TOML *data* of the file at *path* (relative
    paths in it are relative to that file).  Raises :class:`CampaignError`."""
    from ground.simulate.simulator import check_settings, parse_duration_s

    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise CampaignError(f"unknown keys {unknown} (known: {sorted(TOP_KEYS)})")
    version = data.get("format_version", CAMPAIGN_FORMAT_VERSION)
    if version != CAMPAIGN_FORMAT_VERSION:
        raise CampaignError(f"format_version {version} != {CAMPAIGN_FORMAT_VERSION}")
    base_path = data.get("base_scenario")
    try:
        base = scn.load_settings(path.parent / base_path) if base_path else scn.ScenarioSettings()
    except OSError as exc:
        raise CampaignError(f"base_scenario {base_path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CampaignError(f"base_scenario {base_path}: {exc}") from None
    for key in ("duration", "settle"):
        try:
            seconds = parse_duration_s(str(data[key])) if key in data else None
        except ValueError as exc:
            raise CampaignError(f"{key}: {exc}") from None
        if key == "duration" and seconds is not None:
            base.duration_s = seconds
    fixed = _flatten(data.get("scenario", {}), "", lambda v: False)
    for key, value in fixed.items():
        try:
            base = scn.set_dotted(base, key, value)
        except ValueError as exc:
            raise CampaignError(f"scenario.{key}: {exc}") from None
    try:
        check_settings(base)
    except ValueError as exc:
        raise CampaignError(f"scenario: {exc}") from None
    dispersions = [
        _parse_dispersion(k, v) for k, v in _flatten(data.get("dispersions", {}), "", _is_distribution).items()
    ]
    for d in dispersions:  # a setting that does not exist is refused before any run
        try:
            scn.set_dotted(base, d.key, d.draw(0))
        except ValueError as exc:
            if "no setting" in str(exc) or "unknown keys" in str(exc):
                raise CampaignError(f"dispersions.{d.key}: {exc}") from None
    grid = data.get("nees_grid_s", DEFAULT_NEES_GRID_S)
    if not isinstance(grid, (int, float)) or not grid > 0:
        raise CampaignError("nees_grid_s must be > 0")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise CampaignError("name must be a non-empty string")
    return Campaign(
        name=name,
        path=path,
        base=base,
        seeds=_seeds(data),
        fixed=fixed,
        dispersions=dispersions,
        estimators=_parse_estimators(data.get("estimators")),
        settle=None if data.get("settle") is None else str(data["settle"]),
        nees_grid_s=float(grid),
    )


def load_campaign(path: str | Path) -> Campaign:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise CampaignError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CampaignError("not a text file (a campaign is a TOML file)") from None
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError(f"{path} is not valid TOML: {exc}") from None
    return parse_campaign(data, path)


def _plain(v):
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def spec_hash(scenario: dict, estimators: list[dict], settle: str | None, nees_grid_s: float) -> str:
    text = json.dumps(
        {
            "v": CAMPAIGN_FORMAT_VERSION,
            "scenario": scenario,
            "estimators": estimators,
            "settle": settle,
            "nees_grid_s": nees_grid_s,
        },
        sort_keys=True,
        default=_plain,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_spec(campaign: Campaign, seed: int) -> RunSpec:
    """The spec of the run with scenario seed *seed*.  A draw the settings refuse is not an
    error here: the spec carries it and the run records it as its failure (as the
    simulator's range checks, a fraction above 1 say, do in the worker)."""
    settings = dataclasses.replace(campaign.base, seed=int(seed))
    dispersed, error = {}, None
    for d in campaign.dispersions:
        value = d.draw(seed)
        dispersed[d.key] = value
        try:
            settings = scn.set_dotted(settings, d.key, value)
        except ValueError as exc:  # the run records it as its failure
            error = error or f"dispersions.{d.key} = {value!r}: {exc}"
    scenario = scn.settings_to_dict(settings)
    estimators = [dataclasses.asdict(e) for e in campaign.estimators]
    h = spec_hash({"settings": scenario, "dispersed": dispersed}, estimators, campaign.settle, campaign.nees_grid_s)
    return RunSpec(
        campaign=campaign.name,
        run_id=run_id(seed),
        seed=int(seed),
        scenario=scenario,
        dispersed=dispersed,
        estimators=estimators,
        settle=campaign.settle,
        nees_grid_s=campaign.nees_grid_s,
        spec_hash=h,
        error=error,
    )


def run_specs(campaign: Campaign) -> list[RunSpec]:
    return [run_spec(campaign, s) for s in campaign.seeds]
