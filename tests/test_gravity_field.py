"""The EGM2008 field of pygnc.environment.gravity: the committed table is brahe's EGM2008, the
acceleration is brahe's to rounding (the poles too), and the orbit dynamics add it once per
step beyond the zonals they evaluate at every stage."""

import math

import numpy as np
import pytest

from pygnc.environment import gravity
from pygnc.estimation import orbit_dynamics as od

brahe = pytest.importorskip("brahe")


@pytest.fixture(scope="module")
def model():
    return brahe.GravityModel.from_model_type(brahe.GravityModelType.EGM2008_120)


def test_the_committed_table_is_brahes_egm2008(model):
    t = gravity.load_table()
    assert t["degree"] == gravity.TABLE_DEGREE
    assert t["gm_m3_s2"] == model.gm and t["radius_m"] == model.radius
    for n in range(t["degree"] + 1):
        for m in range(n + 1):
            assert t["c"][n, m] == model.get_c(n, m) and t["s"][n, m] == model.get_s(n, m), (n, m)


def _points():
    rng = np.random.default_rng(4)
    pts = [np.array([0.0, 0.0, 6_878_137.0]), np.array([0.0, 0.0, -6_900_000.0])]  # the poles
    for _ in range(20):
        u = rng.standard_normal(3)
        pts.append(u / np.linalg.norm(u) * rng.uniform(6.7e6, 7.3e6))
    return pts


@pytest.mark.parametrize("degree", [8, 34, 70])
def test_the_acceleration_is_brahes(model, degree):
    """The terms of degree 2..n, all orders (less the central term: brahe's degree-0/1 sum)."""
    f = gravity.GravityField(degree)
    for r in _points():
        want = model.compute_spherical_harmonics(r, degree, degree) - model.compute_spherical_harmonics(r, 1, 1)
        got = np.array(f.acceleration_itrs(*r))
        assert np.abs(got - want).max() < 1e-12 * 9.0, (r, got - want)


def test_first_zonal_leaves_the_low_zonals_to_the_integrator(model):
    """GravityField(n, first_zonal=3) + the J2 term of orbit_dynamics' zonal sums is the
    whole field of degree n (what a DynamicsModel with gravity_degree n integrates)."""
    n = 20
    f = gravity.GravityField(n, first_zonal=3)
    zj = od.egm2008_zonal_j(2)
    for r in _points()[2:8]:
        want = model.compute_spherical_harmonics(r, n, n)
        got = np.array(f.acceleration_itrs(*r)) + od.gravity_acceleration(r, zj, (0.0, 0.0, 1.0))
        assert np.abs(got - want).max() < 1e-11, r


def test_a_model_with_the_field_needs_time_and_excludes_the_egm96_tesserals():
    m = od.DynamicsModel(zonal_j=od.egm2008_zonal_j(2), gravity_degree=20)
    x = np.array([6_878_137.0, 0.0, 0.0, 0.0, 7612.0 * math.cos(1.7), 7612.0 * math.sin(1.7), 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="t_gps_s is required"):
        od.propagate(x, 5.0, m)
    with pytest.raises(ValueError, match="two fields"):
        od.DynamicsModel(zonal_j=od.egm2008_zonal_j(2), gravity_degree=20, tesseral_degree=8)
    # Against the point mass + J2 only, the field moves a 5-s step by its ~1e-4 m/s^2 x 12.5 s^2.
    x1, _ = od.propagate(x, 5.0, m, t_gps_s=1.4e9)
    x0, _ = od.propagate(x, 5.0, od.DynamicsModel(zonal_j=od.egm2008_zonal_j(2)), t_gps_s=1.4e9)
    assert 1e-5 < np.linalg.norm(x1[:3] - x0[:3]) < 1e-2
