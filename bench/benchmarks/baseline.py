"""Baseline: what a bare grpc.aio bidi stream with mTLS does on this machine, in this run.

The echo server runs in its own process; the client pipelines envelope-sized frames with the
node's window and reads receipt-sized answers. Measures the same quantities the other
benchmarks are compared with: max rate, latency at half of it, one round trip, and eight
sequential round trips on eight connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bench.cluster import FEDERATION, Child, Cluster, cpu_seconds, free_port
from bench.echo import EchoStream
from bench.runner import Benchmark, Context, Row
from bench.stats import median, pace, percentile
from bench.wire import frame_sizes
from certs.identity import agency_dns_name
from node.config import DeliverySection

PEERS = 8


def stream_count(stream: EchoStream) -> int:
    return stream.answered


async def saturate(
    stream: EchoStream, frame: bytes, *, count: int, seconds: float, window: int
) -> float:
    """Frames answered per second with up to `window` in flight, bounded in count and time."""
    base = stream.answered
    start = time.perf_counter()
    deadline = start + seconds
    sent = 0
    while sent < count and time.perf_counter() < deadline:
        if sent - (stream.answered - base) >= window:
            await stream.wait_answered(base + sent - window + 1, within=10.0)
        await stream.write(frame)
        sent += 1
    await stream.wait_answered(base + sent, within=30.0)
    return sent / (time.perf_counter() - start)


async def open_loop(
    stream: EchoStream, frame: bytes, *, rate: float, seconds: float
) -> list[float]:
    """Latencies of frames written on a fixed schedule at `rate` per second."""
    before = len(stream.latencies)
    base = stream.answered
    count = max(1, int(rate * seconds))
    start = time.perf_counter()
    for i in range(count):
        await pace(start, i, rate)
        await stream.write(frame)
    await stream.wait_answered(base + count, within=30.0)
    return stream.latencies[before:]


@contextlib.asynccontextmanager
async def bare_echo(
    cluster: Cluster, root: Path, *, streams: int
) -> AsyncIterator[tuple[Child, list[EchoStream], bytes]]:
    """An echo server (its own process, `streams` ports) and an open stream to each port,
    with the certificates of the cluster's NL-POL (client) and DE-BKA (server); yields the
    server, the streams and an envelope-sized frame."""
    envelope_bytes, receipt_bytes = frame_sizes()
    ports = [free_port() for _ in range(streams)]
    server = Child(
        [
            sys.executable,
            "-m",
            "bench.echo",
            "--home",
            str(cluster.homes["DE-BKA"]),
            "--ports",
            ",".join(map(str, ports)),
            "--reply-bytes",
            str(receipt_bytes),
        ],
        expected=streams,
        log=root / "echo.log",
    )
    opened = [
        EchoStream(
            port=p, home=cluster.homes["NL-POL"], server_name=agency_dns_name(FEDERATION, "DE-BKA")
        )
        for p in ports
    ]
    frame = b"e" * envelope_bytes
    try:
        await server.ready()
        for s in opened:
            await s.open()
            await s.roundtrip(frame)
        yield server, opened, frame
    finally:
        await asyncio.gather(*(s.close() for s in opened), return_exceptions=True)
        server.stop()


async def run(ctx: Context) -> list[Row]:
    envelope_bytes, receipt_bytes = frame_sizes()
    root = ctx.scratch("baseline")
    cluster = Cluster(root, ["NL-POL", "DE-BKA"])
    window = DeliverySection().window
    async with bare_echo(cluster, root, streams=PEERS) as (server, streams, frame):
        main = streams[0]
        await saturate(main, frame, count=ctx.count(2000, 5000), seconds=2.0, window=window)
        cpu = (cpu_seconds(os.getpid()), server.cpu_seconds(), stream_count(main))
        rate = await saturate(
            main,
            frame,
            count=ctx.count(40_000, 200_000),
            seconds=ctx.seconds(4.0, 20.0),
            window=window,
        )
        n = stream_count(main) - cpu[2]
        client_us = (cpu_seconds(os.getpid()) - cpu[0]) / n * 1e6
        server_us = (server.cpu_seconds() - cpu[1]) / n * 1e6
        lat = await open_loop(main, frame, rate=rate / 2, seconds=ctx.seconds(3.0, 10.0))
        rounds = ctx.count(200, 500)
        server_cpu = server.cpu_seconds()
        one = [await main.roundtrip(frame) for _ in range(rounds)]
        lone_us = (server.cpu_seconds() - server_cpu) / rounds * 1e6
        seq8 = []
        for _ in range(rounds):
            start = time.perf_counter()
            for s in streams:
                await s.roundtrip(frame)
            seq8.append(time.perf_counter() - start)
    ctx.values.update(
        {
            "baseline.rate": rate,
            "baseline.client_cpu_us": client_us,
            "baseline.server_cpu_us": server_us,
            "baseline.p50_ms": percentile(lat, 50) * 1e3,
            "baseline.p99_ms": percentile(lat, 99) * 1e3,
            "baseline.one_ms": median(one) * 1e3,
            "baseline.seq8_ms": median(seq8) * 1e3,
            "baseline.lone_server_us": lone_us,
            "envelope_bytes": envelope_bytes,
            "receipt_bytes": receipt_bytes,
        }
    )
    size = f"{envelope_bytes} B in, {receipt_bytes} B back"
    return [
        Row("bare stream rate", rate, "msg/s", note=f"window {window}; {size}"),
        Row("bare client CPU per message", client_us, "us", note="bench process, all threads"),
        Row("bare server CPU per message", server_us, "us", note="echo process, all threads"),
        Row("bare latency p50 @50% load", ctx.values["baseline.p50_ms"], "ms"),
        Row("bare latency p99 @50% load", ctx.values["baseline.p99_ms"], "ms"),
        Row("bare one round trip (median)", ctx.values["baseline.one_ms"], "ms"),
        Row(
            "bare server CPU per lone message",
            lone_us,
            "us",
            note="one round trip at a time: what a message that arrives alone costs",
        ),
        Row(f"bare {PEERS} sequential round trips", ctx.values["baseline.seq8_ms"], "ms"),
    ]


BENCHMARK = Benchmark(name="baseline", title="bare grpc.aio mTLS bidi stream, no work", run=run)
