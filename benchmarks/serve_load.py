"""Load check of the web app: N concurrent compose requests on loopback.

Starts `gancomposer serve` on a free loopback port, sends N (default 50) compose requests at once, and
checks that none failed with a 5xx, that every response is a valid piece with its own id, its own seed and
a MIDI file that parses. Prints requests per second and latency percentiles.

    python benchmarks/serve_load.py [--model RUN] [--requests 50] [--bars 8]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np
import symusic


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def fire(base: str, n: int, bars: int, model: str) -> tuple[list, list[float], float]:
    async with httpx.AsyncClient(base_url=base, timeout=600) as client:
        async def one(seed: int):
            t = time.perf_counter()
            r = await client.post("/api/compose", json={"model": model, "bars": bars, "seed": seed})
            return r, time.perf_counter() - t

        t0 = time.perf_counter()
        results = await asyncio.gather(*(one(1000 + i) for i in range(n)))
        total = time.perf_counter() - t0
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
    return checks, [lat for _, lat in results], total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--requests", type=int, default=50)
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
            checks, lat, total = asyncio.run(fire(base, args.requests, args.bars, models[0]["name"]))
        finally:
            server.terminate()
            server.wait(timeout=10)
    codes = [c[0] for c in checks]
    ids = [c[2] for c in checks if c[2]]
    print(f"{args.requests} concurrent compose requests ({args.bars} bars, WAV and PNG rendered) in {total:.1f} s: "
          f"{args.requests / total:.2f} requests/s")
    print(f"latency p50 {np.percentile(lat, 50):.2f} s, p95 {np.percentile(lat, 95):.2f} s, max {max(lat):.2f} s")
    print(f"status codes: {sorted(set(codes))}; 5xx: {sum(c >= 500 for c in codes)}; right seed: "
          f"{sum(c[1] for c in checks)}/{len(checks)}; distinct pieces: {len(set(ids))}; "
          f"MIDI parses with the reported notes: {sum(c[3] for c in checks)}/{len(checks)}")
    if any(c >= 500 for c in codes) or len(set(ids)) != args.requests or not all(c[3] for c in checks):
        raise SystemExit("load check FAILED")
    print("load check passed")


if __name__ == "__main__":
    main()
