"""A thin FastAPI layer over :class:`gancomposer.compose.Composer`.

Pieces are composed in a worker thread, at most ``workers`` at a time; further requests wait in a bounded
queue (a burst slows the app down, it never crashes it) and are refused with 503 beyond it. Every piece gets
its own random id and its files are named by it, so concurrent requests never mix pieces up. Files are served
only from the app's own output folder, by id, never by a path the client chose.

A compose writes only the piece's MIDI file and its description (``ID.json``, notes included: the page plays
the notes itself). Its WAV and PNG are rendered the first time they are asked for, then kept. The folder keeps
the newest ``keep_pieces`` pieces within ``keep_mb`` megabytes, deleting the oldest; a restart lists what is
on disk.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..compose import MAX_SEED, PRETRAINED_DIR, ComposedPiece, Composer, check_request, concatenate, shipped_models
from ..errors import UserError
from ..files import write_json_atomic
from ..io.midi import read_midi
from ..render import save as save_file

STATIC = Path(__file__).parent / "static"
FILE_NAME = re.compile(r"^([0-9a-f]{16})\.(mid|wav|png)$")
PIECE_JSON = re.compile(r"^[0-9a-f]{16}\.json$")
RANGE = re.compile(r"^bytes=(\d+-\d*|-\d+)(\s*,\s*(\d+-\d*|-\d+))*$")
MEDIA = {"mid": "audio/midi", "wav": "audio/wav", "png": "image/png"}
MAX_BODY = 64 * 1024  # bytes of a request body: every valid request is far smaller
MAX_WORK_BARS = 256  # n x bars one compose request may ask for


class ComposeRequest(BaseModel):
    # a misspelt field is refused with its name, never ignored; NaN and infinities are refused too
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = Field("bach-chorales", description="a name from GET /api/models")
    n: int = Field(1, ge=1, le=16, description="pieces to compose")
    bars: int = Field(8, ge=1, le=64)
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="omit for a random seed")
    temperature: float | None = Field(None, ge=0.1, le=2.0, description="omit for the model's own")
    key: str | None = Field(None, max_length=16, description='e.g. "D minor"; omit for the style\'s own mix')
    meter: str | None = Field(None, max_length=8, description="e.g. 6/8, one of the model's; omit for the style's mix")
    job: str | None = Field(None, pattern=r"^[0-9a-f]{8,32}$",
                            description="an id of the client's choosing: GET /api/progress/{job} follows it")


@dataclass
class Job:
    """One compose request waiting in, or running in, a batch."""

    req: ComposeRequest
    seed: int
    temperature: float
    session: str
    done: asyncio.Future
    progress: float = 0.0  # share of its grid steps composed
    gone: bool = False  # its client has disconnected


class ClientsGone(Exception):
    """Every client of a batch has gone: composing stops."""


class InterpolateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

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
    keep_pieces: int = 500
    keep_bytes: int = 500 * 2**20
    composers: dict[str, Composer] = field(default_factory=dict)
    pieces: list[dict] = field(default_factory=list)  # oldest first
    lock: threading.Lock = field(default_factory=threading.Lock)
    render_locks: dict[str, threading.Lock] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # bytes on disk per piece
    waiting: int = 0
    semaphore: asyncio.Semaphore | None = None
    pending: dict[str, list] = field(default_factory=dict)  # compose jobs gathering into a batch, per model
    jobs: dict[str, Job] = field(default_factory=dict)  # by the client's job id, while they run
    gather_s: float = 0.005
    batch_pieces: int = 128

    def composer(self, name: str) -> Composer:
        if name not in self.models:
            raise HTTPException(404, f"unknown model {name!r}; GET /api/models lists them")
        with self.lock:
            if name not in self.composers:
                self.composers[name] = Composer.load(self.models[name])
            return self.composers[name]

    def admit(self) -> None:
        if self.waiting >= self.max_queue:
            raise HTTPException(503, "the composer is busy; try again in a moment")

    async def in_worker(self, fn, *args):
        """Run ``fn`` in a worker thread once one of the ``workers`` slots is free; a user error becomes a 400."""
        if self.semaphore is None:
            self.semaphore = asyncio.Semaphore(self.workers)
        try:
            async with self.semaphore:
                return await run_in_threadpool(fn, *args)
        except UserError as e:
            raise HTTPException(400, str(e)) from None

    async def run_limited(self, fn, *args):
        """:meth:`in_worker`, counted in the bounded queue (503 beyond it)."""
        self.admit()
        self.waiting += 1
        try:
            return await self.in_worker(fn, *args)
        finally:
            self.waiting -= 1

    async def compose_batched(self, req: ComposeRequest, request: Request) -> Response:
        """Compose ``req`` together with the requests for the same model that arrive within ``gather_s``: one
        batched pass for all, each request getting exactly the pieces it would get alone. Composing stops when
        every client of a batch has gone."""
        self.admit()
        composer = self.composers.get(req.model) or await run_in_threadpool(self.composer, req.model)
        if req.n * req.bars > MAX_WORK_BARS:
            raise HTTPException(400, f"n x bars is {req.n * req.bars}; one request may ask for at most "
                                     f"{MAX_WORK_BARS} bars")
        temperature = composer.temperature if req.temperature is None else req.temperature
        try:
            check_request(req.bars, temperature)
            composer.choose(1, 0, req.key, req.meter)  # an unknown key or meter is refused before queueing
        except UserError as e:
            raise HTTPException(400, str(e)) from None
        seed = req.seed if req.seed is not None else secrets.randbelow(MAX_SEED + 1)
        loop = asyncio.get_running_loop()
        job = Job(req, seed, temperature, request.state.session, loop.create_future())
        if req.job:
            self.jobs[req.job] = job
        queue = self.pending.setdefault(req.model, [])
        queue.append(job)
        if len(queue) == 1:
            loop.call_later(self.gather_s, lambda: asyncio.ensure_future(self._flush(req.model)))
        self.waiting += 1
        watcher = asyncio.ensure_future(_watch_client(request, job))
        try:
            return await job.done
        finally:
            self.waiting -= 1
            watcher.cancel()
            self.jobs.pop(req.job or "", None)

    async def _flush(self, model: str) -> None:
        queue = [job for job in self.pending.pop(model, []) if not job.gone]
        while queue:
            size, cut = 0, 0
            while cut < len(queue) and (cut == 0 or size + queue[cut].req.n <= self.batch_pieces):
                size, cut = size + queue[cut].req.n, cut + 1
            asyncio.ensure_future(self._run_batch(model, queue[:cut]))
            queue = queue[cut:]

    async def _run_batch(self, model: str, batch: list[Job]) -> None:
        try:
            results = await self.in_worker(self._compose_batch, model, batch)
        except Exception as e:  # noqa: BLE001 - every waiting request gets the failure
            for job in batch:
                if not job.done.done():
                    job.done.set_exception(e)
            return
        for job, result in zip(batch, results):
            if not job.done.done():
                job.done.set_result(result)

    def _compose_batch(self, model: str, batch: list[Job]) -> list[Response]:
        composer = self.composer(model)
        steps = [job.req.bars * max(composer.steps(1, range(len(composer.meters)))) for job in batch]
        done = [0]

        def progress(n: int) -> None:  # after each chunk of grid steps: report, or stop if nobody waits
            done[0] += n
            for job, total in zip(batch, steps):
                job.progress = min(1.0, done[0] / total)
            if all(job.gone for job in batch):
                raise ClientsGone

        groups = composer.compose_many([(job.req.n, job.req.bars, job.seed, job.temperature, job.req.key,
                                         job.req.meter) for job in batch], progress=progress)
        # encoded here, in the worker thread: JSON of many pieces' notes would otherwise hold up the event loop
        return [Response(json.dumps({"seed": job.seed, "pieces": [public(d) for d in self.save(
                    pieces, model, "compose", {"temperature": job.temperature, "session": job.session})]}).encode(),
                         media_type="application/json")
                for pieces, job in zip(groups, batch)]

    def save(self, pieces: list[ComposedPiece], model: str, kind: str, extra: dict | None = None) -> list[dict]:
        """Write each piece's MIDI file and description under a new random id; returns the descriptions."""
        out = []
        for cp in pieces:
            pid = secrets.token_hex(8)
            cp.save(self.out / f"{pid}.mid")
            desc = _describe(cp, pid, model, kind, extra or {})
            write_json_atomic(self.out / f"{pid}.json", desc)
            out.append(desc)
        sizes = {d["id"]: sum((self.out / f"{d['id']}.{k}").stat().st_size for k in ("mid", "json")) for d in out}
        with self.lock:
            self.pieces.extend(out)
            self.sizes.update(sizes)
        self.prune()
        return out

    def load_existing(self) -> None:
        """List the pieces an earlier run of the app left in the output folder."""
        found = []
        for path in self.out.glob("*.json"):
            if not PIECE_JSON.match(path.name):
                continue
            try:
                desc = json.loads(path.read_text())
                if desc.get("id") == path.stem and (self.out / f"{path.stem}.mid").is_file():
                    found.append(desc)
            except (OSError, ValueError, AttributeError):
                continue
        self.pieces = sorted(found, key=lambda d: d.get("created", 0))
        for f in self.out.iterdir():
            self.sizes[f.stem] = self.sizes.get(f.stem, 0) + f.stat().st_size
        self.prune()

    def prune(self) -> None:
        """Delete the oldest pieces beyond ``keep_pieces`` or ``keep_bytes`` (their files included)."""
        with self.lock:
            total = sum(self.sizes.get(p["id"], 0) for p in self.pieces)
            while self.pieces and (len(self.pieces) > self.keep_pieces or total > self.keep_bytes):
                old = self.pieces.pop(0)
                total -= self.sizes.pop(old["id"], 0)
                for kind in ("mid", "json", "wav", "png"):
                    (self.out / f"{old['id']}.{kind}").unlink(missing_ok=True)
                    self.render_locks.pop(f"{old['id']}.{kind}", None)

    def find(self, pid: str) -> dict | None:
        with self.lock:
            return next((p for p in self.pieces if p["id"] == pid), None)

    def piece(self, pid: str) -> dict:
        desc = self.find(pid)
        if desc is None:
            raise HTTPException(404, f"no piece {pid!r}")
        return desc

    def file(self, desc: dict, kind: str) -> Path:
        """The piece's file of ``kind``, rendered from its MIDI file the first time it is asked for."""
        pid = desc["id"]
        path = self.out / f"{pid}.{kind}"
        if kind in ("wav", "png") and not path.is_file():
            with self.lock:
                lock = self.render_locks.setdefault(path.name, threading.Lock())
            with lock:  # two downloads at once render once
                if not path.is_file():
                    composer = self.composer(desc["model"])
                    piece = read_midi(self.out / f"{pid}.mid")
                    grid = composer.encoding.encode(piece) if kind == "png" else None
                    save_file(piece, path, grid=grid, enc=composer.encoding, program=composer.program)
                    with self.lock:
                        self.sizes[pid] = self.sizes.get(pid, 0) + path.stat().st_size
            self.prune()
        if not path.is_file():
            raise HTTPException(404, "not found")
        return path

    def interpolate(self, req: InterpolateRequest, session: str) -> dict:
        composer = self.composer(req.model)
        temperature = composer.temperature if req.temperature is None else req.temperature
        pieces = composer.interpolate(req.seed_a, req.seed_b, pieces=req.pieces, bars=req.bars,
                                      temperature=temperature)
        saved = [public(d) for d in self.save(pieces, req.model, "interpolate",
                                              {"temperature": temperature, "session": session})]
        walk_id = secrets.token_hex(8)
        save_file(concatenate(pieces), self.out / f"{walk_id}.mid", program=composer.program)
        return {"pieces": saved, "walk": f"/files/{walk_id}.mid"}


async def _watch_client(request: Request, job: Job) -> None:
    """Mark ``job`` gone when its client disconnects (a cancelled compose in the page, a closed tab)."""
    while not job.done.done():
        if await request.is_disconnected():
            job.gone = True
            return
        await asyncio.sleep(0.2)


def public(desc: dict) -> dict:
    """A piece's description as the API shows it (without the browser session it belongs to)."""
    return {k: v for k, v in desc.items() if k != "session"}


def find_models(runs: str | None) -> dict[str, Path | None]:
    """The shipped models plus every run folder (with checkpoints) under ``runs``."""
    models: dict[str, Path | None] = dict(shipped_models())
    if runs:
        for ck in sorted(Path(runs).glob("**/checkpoints")):
            if any(ck.glob("*.safetensors")):
                models[str(ck.parent.relative_to(runs)) or ck.parent.name] = ck.parent
    return models


def _describe(cp: ComposedPiece, pid: str, model: str, kind: str, extra: dict) -> dict:
    p = cp.piece
    label = f"{model}-seed{cp.seed}-{cp.meta.get('index', cp.piece.name.rsplit('-', 1)[-1])}"
    return {
        "id": pid, "model": model, "kind": kind, "name": p.name, "seed": cp.seed, **cp.meta, **extra,
        "bars": cp.bars, "bar_quarters": p.bar_quarters, "tempo": p.tempo, "program": cp.program,
        "label": label,
        "seconds": round(len(cp.grid) / cp.encoding.steps_per_quarter * 60 / p.tempo, 2),
        "notes": [[int(a), float(b), float(c)] for a, b, c in zip(p.pitch, p.start, p.duration)],
        "range": [cp.encoding.low, cp.encoding.high], "created": time.time(),
        "files": {k: f"/files/{pid}.{k}" for k in ("mid", "wav", "png")},
    }


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def create_app(models: dict[str, Path | None] | None = None, out: str | Path | None = None, *,
               workers: int = 2, max_queue: int = 256, keep_pieces: int = 500, keep_mb: float = 500,
               allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS + ("testserver",)) -> FastAPI:
    """The app; ``models`` defaults to the shipped model, ``out`` to a fresh temporary folder.

    Requests whose ``Host`` is not in ``allowed_hosts`` are refused (a page on another site that rebinds its
    name to this machine cannot read the API).
    """
    out_dir = Path(out) if out else Path(tempfile.mkdtemp(prefix="gancomposer-web-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    state = AppState(models if models is not None else find_models(None), out_dir.resolve(), workers, max_queue,
                     keep_pieces, int(keep_mb * 2**20))
    state.load_existing()
    if state.models:  # the first model loads now, so no request waits for it (and stalls the others)
        state.composer(next(iter(state.models)))
    app = FastAPI(title="gancomposer", version=__version__, docs_url=None, redoc_url=None,
                  description="Compose music with a recurrent GAN: JSON API behind the page at /.")
    _add_safety(app, allowed_hosts)
    _add_page(app)
    _add_api(app, state)
    _add_files(app, state)
    app.state.composer_state = state
    return app


def _add_safety(app: FastAPI, allowed_hosts: tuple[str, ...]) -> None:
    """Host allow-list, body cap, and validation errors that never echo a value JSON cannot hold."""
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the reasons without the values: an echoed NaN or 1e400 could not even be written as JSON
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    app.add_middleware(BodyCap)
    app.add_middleware(SessionCookie)


class SessionCookie:
    """Give each browser a random session id in a cookie, so the page lists that browser's pieces only."""

    NAME = "gancomposer_session"

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        cookies = dict(scope["headers"]).get(b"cookie", b"").decode("latin-1")
        found = re.search(rf"(?:^|;\s*){self.NAME}=([0-9a-f]{{32}})(?:;|$)", cookies)
        sid = found.group(1) if found else secrets.token_hex(16)
        scope.setdefault("state", {})["session"] = sid

        async def send_with_cookie(message):
            if message["type"] == "http.response.start" and not found:
                cookie = f"{self.NAME}={sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000"
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class BodyCap:
    """Refuse a request whose declared body is over :data:`MAX_BODY` (plain ASGI: no cost to other requests)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
                response = JSONResponse({"detail": f"request body over {MAX_BODY // 1024} KiB"}, status_code=413)
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


def _add_page(app: FastAPI) -> None:
    """The page, its files, and the API docs with Swagger UI's files from the installed package (no CDN)."""
    page = (STATIC / "index.html").read_text()
    docs_files = Path(fastapi_offline.__file__).parent / "static"

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="gancomposer API",
                                   swagger_js_url="/docs-files/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-files/swagger-ui.css",
                                   swagger_favicon_url="/docs-files/favicon.png")

    @app.get("/docs-files/{name}", include_in_schema=False)
    def docs_file(name: str) -> FileResponse:
        allowed = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}
        if name not in allowed:
            raise HTTPException(404, "not found")
        return FileResponse(docs_files / name, media_type=allowed[name])

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:  # on the event loop, from memory: answers at once while pieces compose
        return HTMLResponse(page)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        allowed = {"app.js": "text/javascript", "style.css": "text/css"}
        if name not in allowed:
            raise HTTPException(404, "not found")
        return FileResponse(STATIC / name, media_type=allowed[name])


def _add_api(app: FastAPI, state: AppState) -> None:
    @app.get("/api/models", summary="The models that can compose")
    def list_models() -> list[dict]:
        listed = []
        for name, path in state.models.items():
            composer = state.composer(name)
            shipped = path is None or path.parent == PRETRAINED_DIR
            listed.append({"name": name, "source": "shipped" if shipped else str(path), "meters": composer.meters,
                           "keys": composer.keys})
        return listed

    @app.post("/api/compose", summary="Compose pieces; returns their notes and file URLs")
    async def compose(req: ComposeRequest, request: Request) -> Response:
        return await state.compose_batched(req, request)

    @app.get("/api/progress/{job}", summary="How far a compose request with this job id has got (0 to 1)")
    def progress(job: str) -> dict:
        found = state.jobs.get(job)
        if found is None:
            raise HTTPException(404, f"no compose request {job!r} is running")
        return {"progress": round(found.progress, 3)}

    @app.post("/api/interpolate", summary="A walk through latent space between two seeds")
    async def interpolate(req: InterpolateRequest, request: Request) -> dict:
        return await state.run_limited(state.interpolate, req, request.state.session)

    @app.get("/api/pieces", summary="This browser's pieces still in the output folder, newest last")
    def list_pieces(request: Request) -> list[dict]:
        with state.lock:
            return [{k: v for k, v in public(p).items() if k != "notes"} for p in state.pieces
                    if p.get("session") == request.state.session]

    @app.get("/api/pieces/{pid}", summary="One piece, with its notes")
    def get_piece(pid: str) -> dict:
        return public(state.piece(pid))


def _add_files(app: FastAPI, state: AppState) -> None:
    @app.api_route("/files/{name}", methods=["GET", "HEAD"],
                   summary="A piece's MIDI, WAV or PNG (WAV and PNG rendered when first asked for; ranges honoured)")
    async def files(name: str, request: Request) -> FileResponse:
        m = FILE_NAME.match(name)
        if not m:
            raise HTTPException(404, "not found")
        pid, kind = m.groups()
        rng = request.headers.get("range")
        if rng is not None and not RANGE.match(rng.strip()):
            raise HTTPException(416, f"malformed Range header {rng[:60]!r}; expected bytes=START-END")
        desc = state.find(pid)
        if desc is not None:
            path = await run_in_threadpool(state.file, desc, kind)
        else:  # an interpolation's whole walk is a MIDI file without a piece of its own
            path = (state.out / name).resolve()
            if kind != "mid" or path.parent != state.out or not path.is_file():
                raise HTTPException(404, "not found")
        label = desc["label"] if desc is not None else f"walk-{pid}"
        return FileResponse(path, media_type=MEDIA[kind],
                            filename=f"{label}.{kind}" if kind != "png" else None)
