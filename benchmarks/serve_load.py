"""Load check of the web app: N concurrent compose requests on loopback.

Starts `gancomposer serve` on a free loopback port, sends N compose requests at once (for each N of
--requests, default 30 and 100), and checks that none failed, that every response is a valid piece with its
own id, its own seed and a MIDI file that parses. Meanwhile the page (`GET /`) is fetched every 50 ms.
Prints requests per second, latency percentiles and the page's worst time.

    python benchmarks/serve_load.py [--model RUN] [--requests 30,100] [--bars 8]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import multiprocessing
import tempfile
import time

import httpx
import numpy as np
import symusic


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll_page(base: str, stop, times) -> None:
    """Fetch the page every 50 ms until ``stop``; put the list of durations on ``times``."""
    page = []
    with httpx.Client(base_url=base, timeout=60) as client:
        while not stop.is_set():
            t = time.perf_counter()
            client.get("/")
            page.append(time.perf_counter() - t)
            time.sleep(0.05)
    times.put(page)


async def fire(base: str, n: int, bars: int, model: str) -> tuple[list, list[float], float, list[float]]:
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        async def one(seed: int):
            t = time.perf_counter()
            r = await client.post("/api/compose", json={"model": model, "bars": bars, "seed": seed})
            return r, time.perf_counter() - t

        stop = multiprocessing.get_context("fork").Event()
        times = multiprocessing.get_context("fork").Queue()
        # in its own process and connection: neither the client's busy event loop nor its GIL can delay it
        poller = multiprocessing.get_context("fork").Process(target=poll_page, args=(base, stop, times))
        poller.start()
        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(1000 + i) for i in range(n)))
        total = time.perf_counter() - t0
        stop.set()
        page = times.get(timeout=60)
        poller.join()
        checks = []
        for (r, _), seed in zip(results, range(1000, 1000 + n)):
            ok = r.status_code == 200
            body = r.json() if ok else {}
            piece = body.get("pieces", [{}])[0] if ok else {}
            midi_ok = False
            if ok:
                data = (await client.get(piece["files"]["mid"])).content
                midi_ok = symusic.Score.from_midi(data).note_num() == len(piece["notes"])
            checks.append((r.status_code, body.get("seed") == seed, piece.get("id"), midi_ok))
    return checks, [lat for _, lat in results], total, page


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--requests", default="30,100", help="concurrent requests per round, comma-separated")
    ap.add_argument("--bars", type=int, default=8)
    args = ap.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "gancomposer", "serve", "--port", str(port), "--out", out]
        if args.model:
            cmd += ["--model", args.model]
        server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    models = httpx.get(base + "/api/models", timeout=1).json()
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                raise SystemExit("the server did not start")
            failed = False
            for n in (int(x) for x in args.requests.split(",")):
                checks, lat, total, page = asyncio.run(fire(base, n, args.bars, models[0]["name"]))
                failed |= report(n, args.bars, checks, lat, total, page)
        finally:
            server.terminate()
            server.wait(timeout=10)
    if failed:
        raise SystemExit("load check FAILED")
    print("load check passed")


def report(n: int, bars: int, checks: list, lat: list[float], total: float, page: list[float]) -> bool:
    """Print one round's figures; True when it failed."""
    codes = [c[0] for c in checks]
    ids = [c[2] for c in checks if c[2]]
    errors = sum(c != 200 for c in codes)
    print(f"{n} concurrent compose requests ({bars} bars; MIDI written, WAV and PNG left for download) in "
          f"{total:.2f} s: {n / total:.1f} requests/s")
    print(f"  latency p50 {np.percentile(lat, 50):.2f} s, p95 {np.percentile(lat, 95):.2f} s, max {max(lat):.2f} s; "
          f"GET / meanwhile: {len(page)} fetches, p50 {1000 * np.percentile(page, 50):.0f} ms, "
          f"max {1000 * max(page, default=0):.0f} ms")
    print(f"  errors: {errors} (status codes {sorted(set(codes))}); right seed: {sum(c[1] for c in checks)}/{n}; "
          f"distinct pieces: {len(set(ids))}; MIDI parses with the reported notes: {sum(c[3] for c in checks)}/{n}")
    return bool(errors) or len(set(ids)) != n or not all(c[3] for c in checks)


if __name__ == "__main__":
    main()
