"""Flight albedo model (pygnc.environment.albedo) against a fine quadrature of the same
Lambertian-sphere physics (the simulator's, ground.simulate.environment, written separately:
equal-area surface cells instead of equal-solid-angle rays)."""

import numpy as np
from scipy.spatial.transform import Rotation

from ground.simulate import environment as env
from pygnc.environment import albedo as al
from pygnc.environment.sun import AU_M


def _random_geometry(rng):
    rn = al.ALBEDO_EARTH_RADIUS_M + rng.uniform(4e5, 8e5)
    r = rng.normal(size=3)
    r *= rn / np.linalg.norm(r)
    s = rng.normal(size=3)
    s /= np.linalg.norm(s)
    a = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    return r, s, a


def test_matches_fine_surface_quadrature():
    rng = np.random.default_rng(5)
    err, peak = [], 0.0
    for _ in range(60):
        r, s, a = _random_geometry(rng)
        mine = al.albedo_irradiance_faces(r, s, a, reflectivity=0.3)
        ref = env.albedo_irradiance_faces(
            r[None], (s * AU_M)[None], (a @ al.FACE_NORMALS_BODY.T).T[None], albedo=0.3, n_rings=96, n_azimuth=192
        )[0]
        err.append(mine - ref)
        peak = max(peak, ref.max())
    err = np.array(err)
    # Measured: max 0.0008, rms 0.00014 of the solar irradiance (vs 160x320: the same).
    assert np.abs(err).max() < 0.004
    assert np.sqrt(np.mean(err**2)) < 0.001
    assert peak > 0.15  # the geometries include strong albedo


def test_night_side_and_zenith_face_see_nothing():
    r = np.array([6_878_137.0, 0.0, 0.0])
    a = np.eye(3)
    night = al.albedo_irradiance_faces(r, np.array([-1.0, 0.0, 0.0]), a)
    assert np.all(night == 0.0)
    day = al.albedo_irradiance_faces(r, np.array([1.0, 0.0, 0.0]), a)
    # +X face looks away from the Earth; -X (nadir) sees the most.
    assert day[0] == 0.0
    assert day[3] == day.max() and 0.15 < day[3] < 0.3
    # Nadir plate over a sub-solar point: below rho (R/r)^2 (the uniformly lit bound).
    assert day[3] < 0.3 * (al.ALBEDO_EARTH_RADIUS_M / 6_878_137.0) ** 2


def test_cells_reuse_for_another_attitude_equals_full_call():
    rng = np.random.default_rng(9)
    r, s, a = _random_geometry(rng)
    w, u = al.albedo_cells(r, s)
    b = Rotation.random(random_state=1).as_matrix()
    np.testing.assert_allclose(al.faces_from_cells(w, u, b), al.albedo_irradiance_faces(r, s, b), rtol=1e-12)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_unit = st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1)).filter(lambda v: 0.1 < np.linalg.norm(v))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(_unit, st.floats(6.5e6, 4.5e7), _unit), min_size=1, max_size=30))
def test_many_points_at_once_equal_one_by_one_bit_for_bit(points):
    """albedo_cells_many gives exactly albedo_cells' cells for each point (near the poles,
    at GEO, on the night side with no lit cell)."""
    r = np.array([np.asarray(d) / np.linalg.norm(d) * rn for d, rn, _ in points])
    s = np.array([np.asarray(v) / np.linalg.norm(v) for _, _, v in points])
    for (w, u), ri, si in zip(al.albedo_cells_many(r, s, 0.25), r, s):
        w1, u1 = al.albedo_cells(ri, si, 0.25)
        assert np.array_equal(w, w1) and np.array_equal(u, u1) and u.shape == u1.shape
