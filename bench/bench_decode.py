"""Throughput of decode_sense against a bare per-record struct.unpack loop.

Builds a ~100 MB synthetic sense.bin in a temporary directory (deleted afterwards), then
times, in the same run, ``decode_sense`` (to physical units, GPS validity included) and a
loop that only ``struct.unpack_from``s each 251-byte record and builds nothing.  Prints the
median MB/s of each over the repeats and their ratio.

    .venv/bin/python bench/bench_decode.py [--mb 100] [--repeats 5] [--record]

``--record`` writes the figures to bench/results/decode.json (docs/performance.md).
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pygnc.formats.gps import GPS_SEGMENT_DTYPE
from pygnc.formats.sense import RECORD_SIZE, SENSOR_SEGMENT_DTYPE, decode_sense, encode_sense_records

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import figure, record  # noqa: E402

# Baseline 1 ("bare", the reference for the ratio): ONE unpack_from per record with a
# single little-endian format covering all 251 bytes.  Big-endian fields come out
# byte-swapped, so this is a speed floor for any struct decoder, not a decoder.
_BARE = struct.Struct("<" + "I7h6H" * 5 + "IBHIBdddfffBdddffffffBB2s")
# Baseline 2: the fewest unpack_from calls that get every byte order right (struct cannot
# switch byte order mid-format): per sensor >I, <7h, >6H; GPS >IB then <HIB...BB.
_T = struct.Struct(">I")
_IMU = struct.Struct("<7h")
_SUN = struct.Struct(">6H")
_GPS_HEAD = struct.Struct(">IB")
_GPS_BODY = struct.Struct("<HIBdddfffBdddffffffBB")
assert _BARE.size == RECORD_SIZE


def make_file(path: Path, megabytes: float, seed: int = 1) -> int:
    rng = np.random.default_rng(seed)
    n = int(megabytes * 1e6) // RECORD_SIZE
    sensors = np.zeros((n, 5), dtype=SENSOR_SEGMENT_DTYPE)
    t0 = 1_700_000_000 + 25 * np.arange(n)
    sensors["t_sc_s"] = t0[:, None] + 5 * np.arange(5)
    sensors["mag"] = rng.integers(-800, 800, size=(n, 5, 3))
    sensors["gyro"] = rng.integers(-300, 300, size=(n, 5, 3))
    sensors["sun"] = rng.integers(0, 0xC000, size=(n, 5, 6))
    gps = np.zeros(n, dtype=GPS_SEGMENT_DTYPE)
    gps["t_sc_s"] = t0 + 20
    gps["time_status"] = 180
    gps["week"] = 2300
    gps["ms_of_week"] = (t0 % 604800) * 1000
    gps["pos_ecef_m"] = rng.normal(0, 4e6, size=(n, 3))
    gps["vel_ecef_m_s"] = rng.normal(0, 4e3, size=(n, 3))
    gps["sats_tracked"] = 12
    gps["sats_in_solution"] = 9
    path.write_bytes(encode_sense_records(sensors, gps))
    return path.stat().st_size


def struct_loop(data: bytes) -> int:
    unpack = _BARE.unpack_from
    count = 0
    for off in range(0, len(data) - RECORD_SIZE + 1, RECORD_SIZE):
        unpack(data, off)
        count += 1
    return count


def struct_loop_endian(data: bytes) -> int:
    t, imu, sun = _T.unpack_from, _IMU.unpack_from, _SUN.unpack_from
    head, body = _GPS_HEAD.unpack_from, _GPS_BODY.unpack_from
    count = 0
    for off in range(0, len(data) - RECORD_SIZE + 1, RECORD_SIZE):
        for s in range(off, off + 150, 30):
            t(data, s)
            imu(data, s + 4)
            sun(data, s + 18)
        head(data, off + 150)
        body(data, off + 155)
        count += 1
    return count


def timed(fn, data: bytes, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(data)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=100.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sense.bin"
        size = make_file(path, args.mb)
        data = path.read_bytes()
    t_cold = timed(decode_sense, data, 1)[0]  # first call: fresh memory for the output
    batch = decode_sense(data)
    assert batch.stats.bytes_skipped == 0 and batch.stats.records == size // RECORD_SIZE
    assert struct_loop(data) == batch.stats.records == struct_loop_endian(data)
    del batch
    # Each contender runs its repeats back to back.  (Interleaving them on this VM makes
    # every decode pay first-touch faults on its ~290 MB output: the hypervisor reclaims
    # freed guest pages within seconds.  The cold figure shows that cost.)
    t_np = timed(decode_sense, data, args.repeats)
    t_st = timed(struct_loop, data, args.repeats)
    t_se = timed(struct_loop_endian, data, args.repeats)
    mb = size / 1e6
    med = {k: statistics.median(v) for k, v in (("np", t_np), ("st", t_st), ("se", t_se))}
    rate = {k: mb / v for k, v in med.items()}
    print(f"file: {mb:.1f} MB, {size // RECORD_SIZE} records, {args.repeats} repeats each (medians)")
    print(f"decode_sense (physical units):        {rate['np']:8.1f} MB/s  ({med['np'] * 1e3:.0f} ms)")
    print(f"decode_sense, first call (cold):      {mb / t_cold:8.1f} MB/s  ({t_cold * 1e3:.0f} ms)")
    print(f"struct loop, 1 unpack/record (bare):  {rate['st']:8.1f} MB/s  ({med['st'] * 1e3:.0f} ms)")
    print(f"struct loop, 17 unpacks/record:       {rate['se']:8.1f} MB/s  ({med['se'] * 1e3:.0f} ms)")
    print(f"ratio vs bare: {rate['np'] / rate['st']:.1f}x   vs 17-unpack: {rate['np'] / rate['se']:.1f}x")
    if args.record:
        record(
            "decode",
            f"sense.bin decode throughput: a {mb:.0f}-MB synthetic file, median of {args.repeats}",
            [
                figure("decode_mb_s", "decode_sense (to physical units, GPS validity included)", rate["np"], "MB/s"),
                figure("decode_cold_mb_s", "... first call (fresh memory for the output)", mb / t_cold, "MB/s"),
                figure(
                    "bare_struct_mb_s", "a bare struct loop, one unpack per record (builds nothing)", rate["st"], "MB/s"
                ),
                figure(
                    "struct_17_mb_s",
                    "a struct loop with every byte order right (17 unpacks per record)",
                    rate["se"],
                    "MB/s",
                ),
                figure("ratio_bare", "decode_sense / the bare loop", rate["np"] / rate["st"]),
                figure("ratio_17", "decode_sense / the 17-unpack loop", rate["np"] / rate["se"]),
            ],
        )


if __name__ == "__main__":
    main()
