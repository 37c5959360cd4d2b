"""IGRF synthesis (pygnc.environment.igrf) against ppigrf, an independent implementation."""

import datetime as dt
import math
import warnings

import numpy as np
import ppigrf
import pytest

from pygnc.environment import igrf
from pygnc.timebase import gps_from_utc_unix


def _ppigrf_gc(r_km, colat_deg, lon_deg, date):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside ppigrf
        br, bt, bp = ppigrf.igrf_gc(r_km, colat_deg, lon_deg, date)
    return np.array([br.item(), bt.item(), bp.item()])


def _gps(date):
    return float(gps_from_utc_unix((date - dt.datetime(1970, 1, 1)).total_seconds()))


def test_random_leo_points_within_10_nt_of_ppigrf():
    rng = np.random.default_rng(11)
    worst = 0.0
    for _ in range(150):
        year = rng.uniform(1990, 2030)
        date = dt.datetime(int(year), 1, 1) + dt.timedelta(days=float(rng.uniform(0, 364)))
        r_km = rng.uniform(6600.0, 7300.0)  # LEO, 200-900 km altitude
        colat = np.degrees(np.arccos(rng.uniform(-1, 1)))
        lon = rng.uniform(-180, 180)
        ref = _ppigrf_gc(r_km, colat, lon, date)
        mine = np.array(igrf.field_spherical_nt(r_km * 1e3, np.radians(colat), np.radians(lon), _gps(date)))
        worst = max(worst, float(np.abs(mine - ref).max()))
    # Measured: 0.21 nT (coefficients cached per day vs ppigrf's exact date).
    assert worst < 10.0
    assert worst < 1.0


def test_ecef_vector_matches_spherical_components_and_near_pole():
    date = dt.datetime(2025, 3, 20, 6)
    t = _gps(date)
    for colat_deg in (1e-7, 0.5, 45.0, 90.0, 179.5):
        lon = 37.0
        r_km = 6878.137
        ref = _ppigrf_gc(r_km, colat_deg, lon, date)
        th, ph = np.radians(colat_deg), np.radians(lon)
        e_r = np.array([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)])
        e_t = np.array([np.cos(th) * np.cos(ph), np.cos(th) * np.sin(ph), -np.sin(th)])
        e_p = np.array([-np.sin(ph), np.cos(ph), 0.0])
        b = igrf.field_ecef_nt(r_km * 1e3 * e_r, t)
        assert abs(b @ e_r - ref[0]) < 1.0
        assert abs(b @ e_t - ref[1]) < 1.0
        if colat_deg > 0.1:  # B_phi is ill-defined at the pole itself
            assert abs(b @ e_p - ref[2]) < 1.0


def test_table_generation_matches_shipped_npz(tmp_path):
    shc = igrf.ppigrf_shc_path()
    assert shc is not None
    tab = igrf.table_from_shc(shc)
    assert tab["degree"] == 13 and tab["epochs_year"][-1] == 2030.0
    # g_1^0 at 2025 (IGRF-14): about -29350 nT
    k = int(np.flatnonzero(tab["epochs_year"] == 2025.0)[0])
    assert -29400 < tab["g_nt"][k, 1, 0] < -29300
    out = tmp_path / "t.npz"
    igrf.write_table(out, tab)
    with np.load(out) as z:
        np.testing.assert_array_equal(z["g_nt"], tab["g_nt"])


def test_the_committed_table_is_what_ppigrfs_file_gives():
    """igrf14.npz is committed (issue 45 item 1: generating it made every install build numpy,
    pandas and ppigrf into an isolated build environment); it must stay what
    scripts/make_igrf_table.py makes from ppigrf's IGRF-14 file."""
    assert igrf.TABLE_PATH.is_file()
    tab = igrf.table_from_shc(igrf.ppigrf_shc_path())
    with np.load(igrf.TABLE_PATH) as z:
        assert int(z["degree"]) == tab["degree"]
        for key in ("epochs_year", "g_nt", "h_nt"):
            np.testing.assert_array_equal(z[key], tab[key])


def test_missing_table_raises_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(igrf, "TABLE_PATH", tmp_path / "absent.npz")
    monkeypatch.setattr(igrf, "ppigrf_shc_path", lambda: None)
    with pytest.raises(igrf.IgrfTableMissing, match="make_igrf_table"):
        igrf.load_table()


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(6.5e6, 7.5e6), st.floats(-1.0, 1.0), st.floats(-math.pi, math.pi), st.floats(1.2e9, 1.5e9)),
        min_size=1,
        max_size=40,
    ),
    st.booleans(),
)
def test_many_points_at_once_equal_one_by_one_bit_for_bit(points, pole):
    """field_ecef_nt_many (the recursions over all points at once) gives exactly the numbers
    of field_ecef_nt, across UTC days and at the poles."""
    r = np.array(
        [
            [rr * math.sqrt(1 - z * z) * math.cos(lon), rr * math.sqrt(1 - z * z) * math.sin(lon), rr * z]
            for rr, z, lon, _ in points
        ]
    )
    if pole:
        r[0] = [0.0, 0.0, 7.0e6]
    t = np.array([p[3] for p in points])
    got = igrf.field_ecef_nt_many(r, t)
    ref = np.array([igrf.field_ecef_nt(ri, ti) for ri, ti in zip(r, t)])
    assert np.array_equal(got, ref)
