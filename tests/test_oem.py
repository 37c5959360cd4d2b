"""CCSDS OEM 2.0 (KVN) writer and reader: keywords, units, epochs, covariance, round trips."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from ground.outputs import oem


def _states(n=5):
    t = 1742450420.0 + 5.0 * np.arange(n) + 0.25
    x = np.column_stack(
        [
            7.0e6 + np.arange(n),
            -1.2345678e5 * np.ones(n),
            1.0e3 * np.arange(n),
            7600.123456 * np.ones(n),
            -1.0 * np.arange(n),
            0.5 * np.ones(n),
        ]
    )
    return t, x


def test_format_and_parse_epoch():
    t = dt.datetime(2025, 3, 20, 6, 0, 5, tzinfo=dt.UTC).timestamp() + 0.123456
    assert oem.format_epoch(t) == "2025-03-20T06:00:05.123456"
    assert oem.parse_epoch("2025-03-20T06:00:05.123456") == pytest.approx(t, abs=1e-7)
    assert oem.parse_epoch("2025-079T06:00:05.123456") == pytest.approx(t, abs=1e-7)  # day-of-year form
    # Rounding that carries into the next second, minute and day.
    assert (
        oem.format_epoch(dt.datetime(2025, 3, 20, 23, 59, 59, tzinfo=dt.UTC).timestamp() + 0.9999996)
        == "2025-03-21T00:00:00.000000"
    )


def test_write_read_round_trip_with_keywords(tmp_path):
    t, x = _states()
    cov = np.array([np.diag([1.0, 4.0, 9.0, 1e-4, 4e-4, 9e-4]) + 0.1 * (np.ones((6, 6)) - np.eye(6)) * 1e-4 for _ in t])
    path = tmp_path / "o.oem"
    n = oem.write_oem(
        path,
        t,
        x,
        ref_frame="ITRF",
        object_name="sc0",
        object_id="2025-000A",
        covariances_m=cov,
        comments=["a comment"],
        creation_unix_s=t[0],
    )
    assert n == len(t)
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == "CCSDS_OEM_VERS = 2.0"
    for kw in (
        "CREATION_DATE = ",
        "ORIGINATOR = PYGNC",
        "META_START",
        "OBJECT_NAME = sc0",
        "OBJECT_ID = 2025-000A",
        "CENTER_NAME = EARTH",
        "REF_FRAME = ITRF",
        "TIME_SYSTEM = UTC",
        "START_TIME = ",
        "STOP_TIME = ",
        "META_STOP",
        "COVARIANCE_START",
        "COV_REF_FRAME = ITRF",
        "COVARIANCE_STOP",
    ):
        assert any(line.startswith(kw) for line in lines), kw
    # Header keywords in the order of the standard.
    order = [
        next(i for i, line in enumerate(lines) if line.startswith(k))
        for k in (
            "CCSDS_OEM_VERS",
            "CREATION_DATE",
            "ORIGINATOR",
            "META_START",
            "OBJECT_NAME",
            "OBJECT_ID",
            "CENTER_NAME",
            "REF_FRAME",
            "TIME_SYSTEM",
            "START_TIME",
            "STOP_TIME",
            "META_STOP",
            "COVARIANCE_START",
        )
    ]
    assert order == sorted(order)
    parsed = oem.read_oem(text)
    assert parsed.header["CCSDS_OEM_VERS"] == "2.0"
    assert parsed.header["COMMENT"] == ["a comment"]
    (seg,) = parsed.segments
    assert seg.metadata["START_TIME"] == "2025-03-20T06:00:20.250000"
    np.testing.assert_allclose(seg.unix_time_s, t, atol=1e-6)
    # km and km/s in the file; 1e-9 km = 1 µm of print resolution.
    np.testing.assert_allclose(seg.state_km, x * 1e-3, atol=1e-9, rtol=0)
    assert len(seg.covariances) == len(t)
    ep, frame, c = seg.covariances[2]
    assert frame == "ITRF" and ep == pytest.approx(t[2], abs=1e-6)
    np.testing.assert_allclose(c, cov[2] * 1e-6, rtol=1e-9)  # km^2, km^2/s, km^2/s^2
    np.testing.assert_array_equal(c, c.T)


def test_writer_drops_nonfinite_and_repeated_epochs_and_sorts(tmp_path):
    t, x = _states(4)
    x[1, 0] = np.nan
    t2 = np.concatenate([t[::-1], t[:1]])
    x2 = np.concatenate([x[::-1], x[:1]])
    n = oem.write_oem(tmp_path / "o.oem", t2, x2)
    seg = oem.read_oem((tmp_path / "o.oem").read_text()).segments[0]
    assert n == 3
    np.testing.assert_allclose(seg.unix_time_s, t[[0, 2, 3]], atol=1e-6)


def test_writer_refuses_empty_and_unknown_frame(tmp_path):
    with pytest.raises(ValueError):
        oem.write_oem(tmp_path / "o.oem", [], np.zeros((0, 6)))
    with pytest.raises(ValueError):
        oem.write_oem(tmp_path / "o.oem", *_states(), ref_frame="J2001")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda s: s.replace("CCSDS_OEM_VERS = 2.0\n", ""), "CCSDS_OEM_VERS"),
        (lambda s: s.replace("REF_FRAME = ITRF\n", ""), "REF_FRAME"),
        (lambda s: s.replace(" 0.000500000\n", "\n", 1), "7 or 10 fields"),
        (
            lambda s: s.replace("STOP_TIME = 2025-03-20T06:00:40.250000", "STOP_TIME = 2025-03-20T06:00:30.250000"),
            "outside",
        ),
    ],
)
def test_reader_rejects_malformed(tmp_path, mutate, match):
    t, x = _states()
    oem.write_oem(tmp_path / "o.oem", t, x)
    with pytest.raises(oem.OemError, match=match):
        oem.read_oem(mutate((tmp_path / "o.oem").read_text()))


def test_rows_of_another_quality_are_segments_of_their_own(tmp_path):
    """The quality words split the ephemeris: a span that is not ``ok`` is its own segment,
    marked, so no consumer interpolates from it into the usable ones unawares."""
    t, x = _states(12)
    n = t.size
    words = np.array(["acquiring"] * 2 + ["ok"] * (n - 5) + ["uncertain"] * 3, dtype=object)
    cov = np.broadcast_to(np.eye(6), (n, 6, 6))
    assert oem.write_oem(tmp_path / "o.oem", t, x, quality=words, covariances_m=cov) == n
    parsed = oem.read_oem((tmp_path / "o.oem").read_text())
    assert [s.unix_time_s.size for s in parsed.segments] == [2, n - 5, 3]
    assert [s.comments[0].split(":")[0] for s in parsed.segments] == [
        "quality acquiring",
        "quality ok",
        "quality uncertain",
    ]
    assert "not usable" in parsed.segments[2].comments[0] and "not usable" not in parsed.segments[1].comments[0]
    assert [len(s.covariances) for s in parsed.segments] == [2, n - 5, 3]
    np.testing.assert_allclose(np.concatenate([s.unix_time_s for s in parsed.segments]), t, atol=1e-6)
