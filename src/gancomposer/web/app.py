"""A thin FastAPI layer over :class:`gancomposer.compose.Composer`.

Pieces are composed in a worker thread, at most ``workers`` at a time; further requests wait in a bounded
queue (a burst slows the app down, it never crashes it) and are refused with 503 beyond it. Every piece gets
its own random id and its files are named by it, so concurrent requests never mix pieces up. Files are served
only from the app's own output folder, by id, never by a path the client chose.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..compose import DEFAULT_MODEL, MAX_SEED, ComposedPiece, Composer, concatenate
from ..render import save as save_file
from ..errors import UserError

STATIC = Path(__file__).parent / "static"
FILE_NAME = re.compile(r"^[0-9a-f]{16}\.(mid|wav|png)$")
MEDIA = {"mid": "audio/midi", "wav": "audio/wav", "png": "image/png"}


class ComposeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is refused with its name, never ignored

    model: str = Field("bach-chorales", description="a name from GET /api/models")
    n: int = Field(1, ge=1, le=16, description="pieces to compose")
    bars: int = Field(8, ge=1, le=64)
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="omit for a random seed")
    temperature: float | None = Field(None, ge=0.1, le=2.0, description="omit for the model's own")


class InterpolateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = "bach-chorales"
    seed_a: int = Field(..., ge=0, le=MAX_SEED)
    seed_b: int = Field(..., ge=0, le=MAX_SEED)
    pieces: int = Field(5, ge=2, le=16, description="pieces along the walk, both ends included")
    bars: int = Field(4, ge=1, le=16)
    temperature: float | None = Field(None, ge=0.1, le=2.0, description="omit for the model's own")


@dataclass
class AppState:
    models: dict[str, Path | None]  # name -> checkpoint (None: the shipped model)
    out: Path
    workers: int = 2
    max_queue: int = 256
    composers: dict[str, Composer] = field(default_factory=dict)
    pieces: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: int = 0
    semaphore: asyncio.Semaphore | None = None

    def composer(self, name: str) -> Composer:
        if name not in self.models:
            raise HTTPException(404, f"unknown model {name!r}; GET /api/models lists them")
        with self.lock:
            if name not in self.composers:
                self.composers[name] = Composer.load(self.models[name])
            return self.composers[name]

    async def run_limited(self, fn, *args):
        """Run ``fn`` in a worker thread once a slot is free; a user error becomes a 400."""
        if self.semaphore is None:
            self.semaphore = asyncio.Semaphore(self.workers)
        if self.waiting >= self.max_queue:
            raise HTTPException(503, "the composer is busy; try again in a moment")
        self.waiting += 1
        try:
            async with self.semaphore:
                return await run_in_threadpool(fn, *args)
        except UserError as e:
            raise HTTPException(400, str(e)) from None
        finally:
            self.waiting -= 1

    def save(self, pieces: list[ComposedPiece], model: str, kind: str) -> list[dict]:
        """Write each piece's files under a new random id; returns their descriptions."""
        out = []
        for cp in pieces:
            pid = secrets.token_hex(8)
            for fmt in ("mid", "wav", "png"):
                cp.save(self.out / f"{pid}.{fmt}")
            out.append(_describe(cp, pid, model, kind))
        with self.lock:
            self.pieces.extend(out)
        return out

    def compose(self, req: ComposeRequest) -> dict:
        composer = self.composer(req.model)
        seed = req.seed if req.seed is not None else secrets.randbelow(MAX_SEED + 1)
        pieces = composer.compose(n=req.n, bars=req.bars, seed=seed, temperature=req.temperature)
        return {"seed": seed, "pieces": self.save(pieces, req.model, "compose")}

    def interpolate(self, req: InterpolateRequest) -> dict:
        composer = self.composer(req.model)
        pieces = composer.interpolate(req.seed_a, req.seed_b, pieces=req.pieces, bars=req.bars,
                                      temperature=req.temperature)
        saved = self.save(pieces, req.model, "interpolate")
        walk_id = secrets.token_hex(8)
        save_file(concatenate(pieces), self.out / f"{walk_id}.mid", program=composer.program)
        return {"pieces": saved, "walk": f"/files/{walk_id}.mid"}


def find_models(runs: str | None) -> dict[str, Path | None]:
    """The shipped model plus every run folder (with checkpoints) under ``runs``."""
    models: dict[str, Path | None] = {}
    if DEFAULT_MODEL.is_file():
        models["bach-chorales"] = None
    if runs:
        for ck in sorted(Path(runs).glob("**/checkpoints")):
            if any(ck.glob("*.safetensors")):
                models[str(ck.parent.relative_to(runs)) or ck.parent.name] = ck.parent
    return models


def _describe(cp: ComposedPiece, pid: str, model: str, kind: str) -> dict:
    p = cp.piece
    return {
        "id": pid, "model": model, "kind": kind, "name": p.name, "seed": cp.seed, **cp.meta,
        "bars": cp.bars, "tempo": p.tempo,
        "seconds": round(len(cp.grid) / cp.encoding.steps_per_quarter * 60 / p.tempo, 2),
        "notes": [[int(a), float(b), float(c)] for a, b, c in zip(p.pitch, p.start, p.duration)],
        "range": [cp.encoding.low, cp.encoding.high], "created": time.time(),
        "files": {k: f"/files/{pid}.{k}" for k in ("mid", "wav", "png")},
    }


def create_app(models: dict[str, Path | None] | None = None, out: str | Path | None = None, *,
               workers: int = 2, max_queue: int = 256) -> FastAPI:
    """The app; ``models`` defaults to the shipped model, ``out`` to a fresh temporary folder."""
    out_dir = Path(out) if out else Path(tempfile.mkdtemp(prefix="gancomposer-web-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    state = AppState(models if models is not None else find_models(None), out_dir.resolve(), workers, max_queue)
    app = FastAPI(title="gancomposer", version=__version__,
                  description="Compose music with a recurrent GAN: JSON API behind the page at /.")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text())

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        allowed = {"app.js": "text/javascript", "style.css": "text/css"}
        if name not in allowed:
            raise HTTPException(404, "not found")
        return FileResponse(STATIC / name, media_type=allowed[name])

    @app.get("/api/models", summary="The models that can compose")
    def list_models() -> list[dict]:
        return [{"name": n, "source": "shipped" if p is None else str(p)} for n, p in state.models.items()]

    @app.post("/api/compose", summary="Compose pieces; returns their notes and file URLs")
    async def compose(req: ComposeRequest) -> dict:
        return await state.run_limited(state.compose, req)

    @app.post("/api/interpolate", summary="A walk through latent space between two seeds")
    async def interpolate(req: InterpolateRequest) -> dict:
        return await state.run_limited(state.interpolate, req)

    @app.get("/api/pieces", summary="Pieces composed since the app started, newest last")
    def list_pieces() -> list[dict]:
        with state.lock:
            return [{k: v for k, v in p.items() if k != "notes"} for p in state.pieces]

    @app.get("/api/pieces/{pid}", summary="One piece, with its notes")
    def get_piece(pid: str) -> dict:
        with state.lock:
            for p in state.pieces:
                if p["id"] == pid:
                    return p
        raise HTTPException(404, f"no piece {pid!r}")

    @app.get("/files/{name}", summary="A piece's MIDI, WAV or PNG (HTTP range requests honoured)")
    def files(name: str) -> FileResponse:
        if not FILE_NAME.match(name):
            raise HTTPException(404, "not found")
        path = (state.out / name).resolve()
        if path.parent != state.out or not path.is_file():
            raise HTTPException(404, "not found")
        return FileResponse(path, media_type=MEDIA[name.rsplit(".", 1)[1]],
                            filename=name if not name.endswith(".png") else None)

    app.state.composer_state = state
    return app
