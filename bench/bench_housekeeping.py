"""Housekeeping figures: EMUS sentences/s and OPC-N3 histograms/s decoded, the exchange times
over pseudo-terminals against the simulated devices, and the archive's load rate.

Every figure is the median over ``--repeats`` runs, measured in this one run, with a bare
baseline beside it where one makes sense (splitting lines; ``struct.unpack`` alone):

* EMUS: a stream of every sentence kind of a 12-cell pack (17 sentences per poll), fed in
  4 kB chunks to ``SentenceFramer`` (framing + CRC-8) and then ``decode_sentence`` (physical
  units);
* OPC-N3: ``decode_histogram`` (CRC-16 + units) on random 86-byte records;
* links: one request poll of the 13 default sentences through a pty to the simulated BMS,
  and one histogram read (handshake + 86 one-byte SPI transactions) through a pty to the
  simulated USB-ISS + OPC-N3 - the simulators answer at once, so this is the driver's and
  the pty's cost, not the hardware's;
* archive: loading a synthetic bus log of housekeeping readings into a new SQLite file
  (records/s), loading it again (skipped by checksum) and loading an overlapping log.

    .venv/bin/python bench/bench_housekeeping.py [--sentences 100000] [--histograms 50000]
        [--polls 2000] [--repeats 5] [--record]

``--record`` writes the figures to bench/results/housekeeping.json (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ground.archive.store import Archive
from ground.devices.housekeeping import EmusBmsModel, EmusBmsSim, UsbIssOpcSim, synthetic_hk_buslog
from pygnc.drivers import emus_bms as eb
from pygnc.drivers import emus_bms_codec as ebc
from pygnc.drivers import opc_n3 as on
from pygnc.drivers import opc_n3_codec as onc
from pygnc.drivers.exchange import run_blocking
from pygnc.drivers.link import open_link

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import figure, record  # noqa: E402


def _median_time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def bench_emus(n_sentences: int, repeats: int) -> list[dict]:
    model = EmusBmsModel(rng=random.Random(1))
    poll = b"".join(line for name in eb.DEFAULT_SENTENCES for line in model.sentences(name))
    per_poll = poll.count(b"\r\n")
    stream = poll * (n_sentences // per_poll)
    n = stream.count(b"\r\n")
    chunks = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]

    def bare():
        return [ln for ln in stream.split(b"\r\n") if ln]

    def frame():
        f = ebc.SentenceFramer()
        return sum(len(f.feed(c)) for c in chunks)

    def frame_decode():
        f = ebc.SentenceFramer()
        k = 0
        for c in chunks:
            for s in f.feed(c):
                ebc.decode_sentence(s)
                k += 1
        return k

    assert frame() == n and frame_decode() == n
    t_bare, t_frame, t_dec = (_median_time(fn, repeats) for fn in (bare, frame, frame_decode))
    print(f"EMUS BMS: {n} sentences ({len(stream) / 1e6:.1f} MB, {per_poll} per poll)")
    print(f"  bare line split          {n / t_bare:12,.0f} lines/s")
    print(f"  framing + CRC-8          {n / t_frame:12,.0f} sentences/s  ({t_frame / t_bare:.1f}x bare)")
    print(f"  framing + CRC + decode   {n / t_dec:12,.0f} sentences/s  ({t_dec / t_bare:.1f}x bare)")
    return [
        figure("emus_frame_per_s", "EMUS BMS: sentences framed (CRC-8 checked)", n / t_frame, "sentences/s"),
        figure(
            "emus_decode_per_s", "EMUS BMS: sentences framed and decoded to physical units", n / t_dec, "sentences/s"
        ),
    ]


def bench_opc(n_hist: int, repeats: int) -> list[dict]:
    rng = random.Random(2)
    recs = [
        onc.encode_histogram(
            [rng.randrange(65536) for _ in range(24)],
            (1, 2, 3, 4),
            rng.randrange(1, 1000),
            rng.randrange(1, 700),
            rng.randrange(65536),
            rng.randrange(65536),
            (1.0, 2.0, 3.0),
        )
        for _ in range(n_hist)
    ]

    def bare():
        u = onc.HISTOGRAM.unpack
        for r in recs:
            u(r)

    def crc():
        c = onc.crc16_modbus
        for r in recs:
            c(r[:84])

    def decode():
        d = onc.decode_histogram
        for r in recs:
            d(r)

    t_bare, t_crc, t_dec = (_median_time(fn, repeats) for fn in (bare, crc, decode))
    print(f"OPC-N3: {n_hist} histograms")
    print(f"  struct.unpack only       {n_hist / t_bare:12,.0f} histograms/s")
    print(f"  CRC-16/MODBUS only       {n_hist / t_crc:12,.0f} histograms/s")
    print(f"  decode (CRC + units)     {n_hist / t_dec:12,.0f} histograms/s  ({t_dec / t_bare:.1f}x unpack)")
    return [figure("opc_decode_per_s", "OPC-N3: histograms decoded (CRC-16 + units)", n_hist / t_dec, "histograms/s")]


def bench_links(repeats: int) -> list[dict]:
    with EmusBmsSim(reorder_window_s=0.0) as sim:
        link = open_link(sim.path)
        bms = eb.EmusBms(link, timeout_s=1.0)
        ts = []
        for _ in range(max(5, repeats)):
            t0 = time.perf_counter()
            _, replies = bms.read_blocking(eb.DEFAULT_SENTENCES, 2.0)
            ts.append(time.perf_counter() - t0)
            assert all(r.complete for r in replies)
        link.close()
    print("links (pseudo-terminals, simulated devices answering at once):")
    print(f"  BMS poll, 13 requests / 17 sentences   median {1e3 * statistics.median(ts):7.1f} ms")
    figs = [
        figure(
            "bms_poll_ms",
            "a BMS poll (13 requests, 17 sentences) over a pty to the simulated BMS, median",
            1e3 * statistics.median(ts),
            "ms",
        )
    ]
    timing = on.OpcTiming(retry_s=0.01, fan_spinup_s=0.0)
    with UsbIssOpcSim() as sim:
        link = open_link(sim.path)
        run_blocking(on.setup_and_identify(500_000, timing, with_config=False), link)
        run_blocking(on.power_on(timing), link)
        ts = []
        for _ in range(max(5, repeats)):
            t0 = time.perf_counter()
            run_blocking(on.read_histogram(timing), link)
            ts.append(time.perf_counter() - t0)
        link.close()
    print(
        f"  OPC histogram read, 1 byte/transfer    median {1e3 * statistics.median(ts):7.1f} ms "
        f"(~{onc.HISTOGRAM_SIZE + 2} USB-ISS round trips)"
    )
    return figs + [
        figure(
            "opc_read_ms",
            "an OPC-N3 histogram read (one byte per SPI transfer) over a pty to the simulated USB-ISS, median",
            1e3 * statistics.median(ts),
            "ms",
        )
    ]


def bench_archive(polls: int, repeats: int) -> list[dict]:
    log = synthetic_hk_buslog(polls)
    longer = synthetic_hk_buslog(polls + polls // 10)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "bus.log").write_bytes(log)
        (d / "bus2.log").write_bytes(longer)
        load, again, overlap = [], [], []
        n = 0
        for k in range(repeats):
            db = d / f"a{k}.sqlite"
            with Archive(db) as a:
                t0 = time.perf_counter()
                r = a.load_file(d / "bus.log")
                load.append(time.perf_counter() - t0)
                n = r.records
                t0 = time.perf_counter()
                assert a.load_file(d / "bus.log").status == "already loaded"
                again.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                r2 = a.load_file(d / "bus2.log")
                overlap.append(time.perf_counter() - t0)
            size = os.path.getsize(db)
    tl = statistics.median(load)
    print(f"archive: bus log of {polls} polls ({len(log) / 1e6:.1f} MB, {n} readings) into a new SQLite file")
    print(
        f"  load                     {n / tl:12,.0f} records/s  ({len(log) / 1e6 / tl:.1f} MB/s; db "
        f"{size / 1e6:.1f} MB)"
    )
    print(f"  same file again          {1e3 * statistics.median(again):12.1f} ms (skipped by its SHA-256)")
    print(
        f"  overlapping log          {(r2.records + r2.duplicates) / statistics.median(overlap):12,.0f} records/s "
        f"({r2.duplicates} duplicates ignored, {r2.records} new)"
    )
    return [
        figure(
            "archive_load_per_s", f"archive: a bus log of {polls} polls into a new SQLite file", n / tl, "records/s"
        ),
        figure(
            "archive_again_ms", "... the same file again (skipped by its SHA-256)", 1e3 * statistics.median(again), "ms"
        ),
        figure(
            "archive_overlap_per_s",
            "... an overlapping log",
            (r2.records + r2.duplicates) / statistics.median(overlap),
            "records/s",
        ),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=int, default=100_000)
    p.add_argument("--histograms", type=int, default=50_000)
    p.add_argument("--polls", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--record", action="store_true", help="record the figures in bench/results (the performance page)")
    a = p.parse_args()
    figs = bench_emus(a.sentences, a.repeats)
    figs += bench_opc(a.histograms, a.repeats)
    figs += bench_links(a.repeats)
    figs += bench_archive(a.polls, a.repeats)
    if a.record:
        record(
            "housekeeping",
            f"Housekeeping devices: decoding, the links, the archive (medians of {a.repeats})",
            figs,
            notes="The simulated devices answer at once, so the link figures are the driver's and the "
            "pseudo-terminal's cost, not the hardware's.",
        )


if __name__ == "__main__":
    main()
