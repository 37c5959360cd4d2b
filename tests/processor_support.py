"""Running the flight processors on a simulated scenario and judging them against its truth,
shared by the processor accuracy tests (and usable from a bench)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ground.simulate.sensors import hermite_position
from pygnc.config import Config, Paths, config_for_home
from pygnc.processors.attitude import AttitudeProcessor
from pygnc.processors.orbit import OrbitProcessor
from pygnc.tasks.ingest import build_message_stream

#: Every estimate published (a batch is decimated in flight: Config.batch_decimate_estimates).
EVERY = Config(batch_decimate_estimates=False)


def stream_of(directory, config: Config | None = None) -> list:
    return build_message_stream(Paths(directory), config or config_for_home(directory)).messages


def run_orbit_and_attitude(messages, config: Config | None = None):
    """Orbit and attitude processors as the task tree runs them (orbit estimates handed to
    the attitude processor right after the sample that produced them).  Returns the
    published (type, body) lists of each."""
    config = config or EVERY
    op, ap = OrbitProcessor(config), AttitudeProcessor(config)
    orbit_out, att_out = [], []
    for t, b in messages:
        if t in op.consumes:
            o = op.handle(t, b)
            orbit_out += o
            for t2, b2 in o:
                if t2 in ap.consumes:
                    att_out += ap.handle(t2, b2)
        if t in ap.consumes:
            att_out += ap.handle(t, b)
    return orbit_out, att_out


def renoised(messages, truth, k: int, pos_sigma_m: float, vel_sigma_m_s: float, seed: int) -> list:
    """*messages* with every valid own fix replaced by spacecraft *k*'s truth at its GPS time
    plus fresh white noise (an independent realisation of the receiver on the same orbit)."""
    rng = np.random.default_rng(seed)
    t0 = truth["t_gps_s"][0]
    out = []
    for t, b in messages:
        if t == "gps_fix" and b["peer_id"] == 0 and b["valid"]:
            i = int(round(b["t_gps_s"] - t0))
            b = {
                **b,
                "pos_ecef_m": (truth["r_ecef_m"][k][i] + pos_sigma_m * rng.standard_normal(3)).tolist(),
                "vel_ecef_m_s": (truth["v_ecef_m_s"][k][i] + vel_sigma_m_s * rng.standard_normal(3)).tolist(),
            }
        out.append((t, b))
    return out


def orbit_errors(truth, estimates: list[dict], k: int = 0):
    """GCRS position/velocity errors (n, 6) of ``orbit_estimate`` bodies against spacecraft
    *k*'s truth (Hermite interpolation at the estimates' GPS epochs), and their 6x6
    covariances (n, 6, 6)."""
    tt = truth["t_gps_s"]
    tg = np.array([b["t_gps_s"] for b in estimates])
    r_t = hermite_position(tt, truth["r_gcrs_m"][k], truth["v_gcrs_m_s"][k], tg)
    v_t = np.stack([np.interp(tg, tt, truth["v_gcrs_m_s"][k][:, a]) for a in range(3)], 1)
    e = np.concatenate(
        [np.array([b["r_gcrs_m"] for b in estimates]) - r_t, np.array([b["v_gcrs_m_s"] for b in estimates]) - v_t],
        axis=1,
    )
    cov = np.array([np.reshape(b["cov_gcrs"], (6, 6)) for b in estimates])
    return tg, e, cov


def attitude_errors(truth, estimates: list[dict], k: int = 0):
    """Attitude error rotation vectors (n, 3) [rad] of ``attitude_estimate`` bodies at their
    GPS epochs (truth slerped on its 1-Hz grid), their 3x3 covariances, and gyro-bias errors
    (n, 3) [rad/s] in body axes."""
    from scipy.spatial.transform import Slerp

    tt = truth["t_gps_s"]
    tg = np.array([b["t_gps_s"] for b in estimates])
    rot_t = Slerp(tt, Rotation.from_quat(truth["q_body_to_gcrs"][k][:, [1, 2, 3, 0]]))(np.clip(tg, tt[0], tt[-1]))
    qe = np.array([b["q_body_to_gcrs"] for b in estimates])
    err = (rot_t.inv() * Rotation.from_quat(qe[:, [1, 2, 3, 0]])).as_rotvec()
    cov = np.array([np.reshape(b["cov"], (9, 9))[:3, :3] for b in estimates])
    rib = np.asarray(truth["imu_to_body"])
    idx = np.clip(np.rint(tg - tt[0]).astype(int), 0, tt.size - 1)
    db = np.array([b["gyro_bias_rad_s"] for b in estimates]) - np.radians(truth["gyro_bias_imu_deg_s"][k][idx] @ rib.T)
    return tg, err, cov, db


def nees(e: np.ndarray, cov: np.ndarray) -> np.ndarray:
    return np.einsum("ni,ni->n", e, np.linalg.solve(cov, e[..., None])[..., 0])


class _Store:
    """What BatchRecorder writes to, kept in memory: (raw record, t_sc_s)."""

    def __init__(self):
        self.records = []

    def append(self, raw, t_sc_s, mark=None):
        self.records.append((raw, t_sc_s))
        return True


def downlink_records(out, kind_name: str) -> list:
    """The records of kind *kind_name* the batch writer makes of the messages *out* (at its
    default period), then at its stop (the newest of each key): (raw record, t_sc_s)."""
    from pygnc.formats import batch as B
    from pygnc.tasks.batch_writer import BatchRecorder

    kind = B.KINDS_BY_NAME[kind_name]
    store = _Store()
    rec = BatchRecorder([kind], {kind.name: kind.period_s}, store, lambda: 0.0)
    for t, b in out:
        rec.handle(t, b)
    rec.finish()
    return store.records
