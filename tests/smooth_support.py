"""Scenarios and downlinks for the formation smoother's tests (tests/test_smooth.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_scenario(out: Path, n_sc: int = 2, minutes: float = 60.0, seed: int = 11, **faults) -> dict:
    """A short simulated formation (the simulator's defaults; 2 or more spacecraft, each radio
    with its own range bias) written to *out*; returns its truth."""
    from ground.simulate import scenario as scn
    from ground.simulate.simulator import _extra_spacecraft, simulate, write_scenario

    s = scn.ScenarioSettings(seed=seed, duration_s=minutes * 60.0)
    s.spacecraft = s.spacecraft[:n_sc] + [_extra_spacecraft(k) for k in range(2, n_sc)]
    for k, sc in enumerate(s.spacecraft):
        sc.range_bias_m = 1.5 - 1.2 * k
    s.attitude.max_step_s = 30.0
    s.environment.albedo = 0.0
    for k, v in faults.items():
        setattr(s.faults, k, v)
    write_scenario(simulate(s), out)
    return scn.load_truth(out / "truth.npz")


def homes(out: Path, truth: dict) -> list[Path]:
    return [out if k == 0 else out / str(truth["spacecraft_name"][k]) for k in range(truth["radio_id"].size)]


class _Clock:
    def __init__(self):
        self.t = 1.8e9

    def __call__(self):
        self.t += 0.001
        return self.t


def write_downlink(home: Path, spacecraft_id: int, out: Path) -> None:
    """What spacecraft *spacecraft_id*'s batch writer records (the default kinds and periods:
    one own fix and one range per partner every 5 min) of its files in *home* and of its own
    orbit estimator: the flight's ingest, OrbitProcessor, BatchRecorder and BatchStore."""
    from ground.replay.in_process import quiet_logger
    from pygnc import batch_store as bs
    from pygnc.config import Config, Paths
    from pygnc.formats import batch as B
    from pygnc.processors.orbit import OrbitProcessor
    from pygnc.tasks.batch_writer import BatchRecorder
    from pygnc.tasks.ingest import build_message_stream

    cfg = Config()
    stream = build_message_stream(Paths(home), cfg, quiet_logger())
    proc = OrbitProcessor(cfg)
    out.mkdir(parents=True)
    rec = None
    store = bs.BatchStore(out, 1, "r1", spacecraft_id, context=lambda: rec.context_records())
    store.open()
    kinds = list(B.KINDS)
    rec = BatchRecorder(kinds, {k.name: k.period_s for k in kinds}, store, _Clock())
    for msg_type, body in stream.messages:
        rec.handle(msg_type, body)
        if msg_type in proc.consumes:
            for out_type, out_body in proc.handle(msg_type, body):
                rec.handle(out_type, out_body)
    rec.finish()
    store.close()


def relative_truth(truth: dict, i: int, j: int, t_gps_s) -> np.ndarray:
    """The truth's position of spacecraft j minus i (truth indices) at *t_gps_s*, GCRS."""
    from ground.smooth.bound import truth_states

    tt = truth["t_gps_s"]
    ri, _ = truth_states(tt, truth["r_gcrs_m"][i], truth["v_gcrs_m_s"][i], t_gps_s)
    rj, _ = truth_states(tt, truth["r_gcrs_m"][j], truth["v_gcrs_m_s"][j], t_gps_s)
    return rj - ri
