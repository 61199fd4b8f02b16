"""The JSON API behind the page: every endpoint, the limits, range requests and traversal attempts."""

import concurrent.futures

import pytest
from fastapi.testclient import TestClient

from gancomposer.web.app import create_app


@pytest.fixture()
def client(tiny_run, tmp_path):
    app = create_app({"tiny": tiny_run}, tmp_path / "out", workers=2)
    with TestClient(app) as c:
        yield c


def compose(client, **kw):
    return client.post("/api/compose", json={"model": "tiny", "bars": 2, **kw})


def test_page_static_files_and_openapi(client):
    r = client.get("/")
    assert r.status_code == 200 and "Compose" in r.text and "/static/app.js" in r.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/index.html").status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/models", "/api/compose", "/api/interpolate", "/api/pieces", "/files/{name}"} <= set(paths)


def test_models_compose_pieces_and_files(client):
    source = str(client.app.state.composer_state.models["tiny"])
    listed = client.get("/api/models").json()
    assert [(m["name"], m["source"]) for m in listed] == [("tiny", source)]
    assert listed[0]["meters"] == ["4/4"] and len(listed[0]["keys"]) == 24 and "D minor" in listed[0]["keys"]
    r = compose(client, seed=3, n=2)
    assert r.status_code == 200
    body = r.json()
    assert body["seed"] == 3 and len(body["pieces"]) == 2
    p = body["pieces"][0]
    assert p["bars"] == 2 and p["notes"] and p["seconds"] > 0
    for kind, media in (("mid", "audio/midi"), ("wav", "audio/wav"), ("png", "image/png")):
        f = client.get(p["files"][kind])
        assert f.status_code == 200 and f.headers["content-type"].startswith(media) and len(f.content) > 40
    listed = client.get("/api/pieces").json()
    assert [x["id"] for x in listed] == [x["id"] for x in body["pieces"]]
    assert client.get(f"/api/pieces/{p['id']}").json()["notes"] == p["notes"]
    assert client.get("/api/pieces/ffff").status_code == 404
    again = compose(client, seed=3, n=2).json()["pieces"][0]
    assert again["notes"] == p["notes"] and again["id"] != p["id"]  # same music, its own files


def test_random_seed_when_omitted(client):
    a, b = compose(client).json(), compose(client).json()
    assert 0 <= a["seed"] < 2**32 and a["seed"] != b["seed"]


def test_interpolate(client):
    r = client.post("/api/interpolate", json={"model": "tiny", "seed_a": 1, "seed_b": 2, "pieces": 3, "bars": 2})
    assert r.status_code == 200
    body = r.json()
    assert [p["t"] for p in body["pieces"]] == [0.0, 0.5, 1.0]
    assert {p["kind"] for p in body["pieces"]} == {"interpolate"} and all(p["bars"] == 2 for p in body["pieces"])
    assert client.get(body["walk"]).status_code == 200
    # a misspelt field (the walk's length was called "steps" before 0.2) is refused by name, never ignored
    r = client.post("/api/interpolate", json={"model": "tiny", "seed_a": 1, "seed_b": 2, "steps": 3})
    assert r.status_code == 422 and "steps" in r.text


@pytest.mark.parametrize("payload", [
    {"bars": 65}, {"bars": 0}, {"n": 17}, {"n": 0}, {"seed": -1}, {"seed": 2**32}, {"temperature": 0},
    {"temperature": 5}, {"bars": "many"},
])
def test_limits_give_clear_4xx(client, payload):
    r = client.post("/api/compose", json={"model": "tiny", **payload})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] in payload


def test_unknown_model_is_404(client):
    r = client.post("/api/compose", json={"model": "nope"})
    assert r.status_code == 404 and "GET /api/models" in r.json()["detail"]


@pytest.mark.parametrize("path", [
    "/files/../../etc/passwd", "/files/..%2F..%2Fetc%2Fpasswd", "/files/%2Fetc%2Fpasswd", "/files/passwd",
    "/files/0123456789abcdef.txt", "/files/0123456789abcdef.mid", "/files/%2e%2e", "/files/.%2e/secret.mid",
])
def test_traversal_and_unknown_files_are_404(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert "root:" not in r.text


def test_audio_range_requests(client):
    wav = compose(client, seed=1).json()["pieces"][0]["files"]["wav"]
    full = client.get(wav).content
    r = client.get(wav, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == full[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(full)}"
    assert client.get(wav, headers={"Range": f"bytes={len(full) + 10}-"}).status_code == 416


def test_concurrent_requests_each_get_their_own_piece(client):
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda s: compose(client, seed=s), range(12)))
    assert all(r.status_code == 200 for r in results)
    pieces = [r.json()["pieces"][0] for r in results]
    assert [p["seed"] for p in pieces] == list(range(12))
    assert len({p["id"] for p in pieces}) == 12
    # each response describes the piece for its own seed
    for p in pieces[:3]:
        assert compose(client, seed=p["seed"]).json()["pieces"][0]["notes"] == p["notes"]


def test_full_queue_answers_503(tiny_run, tmp_path):
    app = create_app({"tiny": tiny_run}, tmp_path / "o", workers=1, max_queue=0)
    with TestClient(app) as c:
        r = c.post("/api/compose", json={"model": "tiny", "bars": 1})
        assert r.status_code == 503 and "busy" in r.json()["detail"]


@pytest.mark.parametrize("body", ['{"temperature": NaN}', '{"temperature": Infinity}', '{"seed": NaN}',
                                  '{"seed": 1e400}', '{"temperature": -Infinity}', '{"bars": 1e400}'])
def test_non_finite_and_overflowing_numbers_are_422(client, body):
    r = client.post("/api/compose", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-1] in body


def test_audio_and_picture_are_rendered_only_when_asked_for_then_kept(client):
    out = client.app.state.composer_state.out
    p = compose(client, seed=4).json()["pieces"][0]
    assert sorted(f.suffix for f in out.glob(f"{p['id']}.*")) == [".json", ".mid"]
    assert p["label"] == "tiny-seed4-0" and p["temperature"] == 1.0
    head = client.head(p["files"]["wav"])
    assert head.status_code == 200 and head.headers["content-type"] == "audio/wav"
    wav = client.get(p["files"]["wav"])
    assert wav.content[:4] == b"RIFF" and 'filename="tiny-seed4-0.wav"' in wav.headers["content-disposition"]
    first = (out / f"{p['id']}.wav").stat().st_mtime_ns
    assert client.get(p["files"]["wav"]).content == wav.content
    assert (out / f"{p['id']}.wav").stat().st_mtime_ns == first  # rendered once
    assert client.get(p["files"]["png"]).content[:4] == b"\x89PNG"


def test_malformed_range_gets_json(client):
    p = compose(client, seed=1).json()["pieces"][0]
    r = client.get(p["files"]["mid"], headers={"Range": "bytes=oops"})
    assert r.status_code == 416 and "Range" in r.json()["detail"]


def test_output_folder_stays_bounded_and_a_restart_lists_what_is_on_disk(tiny_run, tmp_path):
    out = tmp_path / "o"
    with TestClient(create_app({"tiny": tiny_run}, out, keep_pieces=5)) as c:
        ids = [c.post("/api/compose", json={"model": "tiny", "bars": 1, "seed": s}).json()["pieces"][0]["id"]
               for s in range(8)]
        c.get(f"/files/{ids[-1]}.wav")
        assert [p["id"] for p in c.get("/api/pieces").json()] == ids[-5:]
        assert {f.stem for f in out.iterdir()} == set(ids[-5:])
        cookies = dict(c.cookies)
    with TestClient(create_app({"tiny": tiny_run}, out, keep_pieces=5), cookies=cookies) as c:  # a restart
        assert [p["id"] for p in c.get("/api/pieces").json()] == ids[-5:]  # the same browser sees its pieces
        assert c.get(f"/files/{ids[-1]}.wav").status_code == 200
        assert c.get(f"/files/{ids[0]}.mid").status_code == 404


def test_host_allow_list_body_cap_and_work_cap(client):
    assert client.get("/api/models", headers={"Host": "attacker.example"}).status_code == 400
    big = '{"model": "tiny", "bars": 1, "pad": "' + "x" * 100_000 + '"}'
    r = client.post("/api/compose", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "KiB" in r.json()["detail"]
    r = compose(client, n=16, bars=64)
    assert r.status_code == 400 and "at most" in r.json()["detail"]


def test_requests_arriving_together_are_composed_in_one_pass_each_as_if_alone(tiny_run, tmp_path):
    from gancomposer.compose import Composer

    app = create_app({"tiny": tiny_run}, tmp_path / "o", workers=1)
    state = app.state.composer_state
    state.gather_s = 0.3  # wide enough that every request of the burst lands in it
    calls = []
    with TestClient(app) as c:
        composer = state.composer("tiny")
        real = composer.compose_many
        composer.compose_many = lambda requests, **kw: calls.append(len(requests)) or real(requests, **kw)
        bodies = [{"model": "tiny", "bars": 1 + s % 3, "seed": s, "temperature": [None, 0.8, 1.3][s % 3]}
                  for s in range(10)]
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            results = list(pool.map(lambda b: c.post("/api/compose", json=b), bodies))
    assert all(r.status_code == 200 for r in results)
    assert max(calls) > 1 and sum(calls) == 10  # batched
    alone = Composer.load(tiny_run)
    for body, r in zip(bodies, results):
        piece = r.json()["pieces"][0]
        expect = alone.compose(n=1, bars=body["bars"], seed=body["seed"], temperature=body["temperature"])[0]
        assert piece["notes"] == [[int(a), float(b), float(d)] for a, b, d in expect.piece.notes()]


def test_serve_says_where_only_once_bound_and_a_busy_port_is_one_line(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    first = subprocess.Popen([sys.executable, "-m", "gancomposer", "serve", "--port", str(port), "--out",
                              str(tmp_path / "a")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = first.stdout.readline()
        assert f"serving bach-chorales, oneills-irish at http://localhost:{port}/" in line
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # bound and listening when it said so
        busy = subprocess.run([sys.executable, "-m", "gancomposer", "serve", "--port", str(port), "--out",
                               str(tmp_path / "b")], capture_output=True, text=True, timeout=60)
        assert busy.returncode == 1 and "Traceback" not in busy.stderr
        assert busy.stderr.count("\n") == 1 and "another program uses that port" in busy.stderr
    finally:
        first.terminate()
        first.wait(timeout=20)
    wide = subprocess.Popen([sys.executable, "-m", "gancomposer", "serve", "--host", "0.0.0.0", "--port", "0",
                             "--out", str(tmp_path / "c")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "warning: serving on 0.0.0.0" in wide.stderr.readline()
    finally:
        wide.terminate()
        wide.wait(timeout=20)


def test_every_bad_body_is_a_4xx_json_answer(client):
    bad = [
        ('{"temperature": NaN}', "application/json"), ('{"seed": 1e400}', "application/json"),
        ('{"temprature": 1.0}', "application/json"), ('{"bars": [1]}', "application/json"),
        ('{"model": "tiny"', "application/json"), ("null", "application/json"), ("[]", "application/json"),
        ('{"model": "tiny"}', "text/plain"), ('{"model": "tiny"}', "application/x-www-form-urlencoded"),
        ("x" * (10 * 2**20), "application/json"),
    ]
    for body, kind in bad:
        r = client.post("/api/compose", content=body, headers={"Content-Type": kind})
        assert 400 <= r.status_code < 500 and isinstance(r.json()["detail"], (str, list)), (body[:40], r.status_code)


def test_api_docs_are_served_from_the_package(client):
    page = client.get("/docs").text
    assert "/docs-files/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert client.get("/docs-files/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs-files/../app.py").status_code == 404
    assert client.get("/redoc").status_code == 404


def test_each_browser_lists_its_own_pieces(tiny_run, tmp_path):
    app = create_app({"tiny": tiny_run}, tmp_path / "o")
    with TestClient(app) as a, TestClient(app) as b:
        mine = a.post("/api/compose", json={"model": "tiny", "bars": 1, "seed": 1}).json()["pieces"][0]
        theirs = b.post("/api/compose", json={"model": "tiny", "bars": 1, "seed": 2}).json()["pieces"][0]
        assert [p["id"] for p in a.get("/api/pieces").json()] == [mine["id"]]
        assert [p["id"] for p in b.get("/api/pieces").json()] == [theirs["id"]]
        assert "session" not in mine and "session" not in a.get(f"/api/pieces/{theirs['id']}").json()
        assert "HttpOnly" in TestClient(app).get("/api/models").headers["set-cookie"]


def test_200_composes_keep_the_folder_under_its_cap(tiny_run, tmp_path):
    out = tmp_path / "o"
    with TestClient(create_app({"tiny": tiny_run}, out)) as c:  # default caps: 500 pieces, 500 MB
        for s in range(200):
            assert c.post("/api/compose", json={"model": "tiny", "seed": s}).status_code == 200
        state = c.app.state.composer_state
        files = list(out.iterdir())
        assert len(state.pieces) <= state.keep_pieces and sum(f.stat().st_size for f in files) <= state.keep_bytes
        assert not [f for f in files if f.suffix in (".wav", ".png")]  # nothing rendered that nobody asked for


def test_progress_is_reported_and_a_compose_whose_client_has_gone_stops(tiny_run, tmp_path):
    import asyncio

    from gancomposer.web.app import ClientsGone, ComposeRequest, Job

    state = create_app({"tiny": tiny_run}, tmp_path / "o").state.composer_state
    seen = []

    async def scenario():
        loop = asyncio.get_running_loop()
        job = Job(ComposeRequest(model="tiny", bars=64), 1, 1.0, "s" * 32, loop.create_future())
        composer = state.composer("tiny")
        real = composer.compose_many

        def watched(requests, progress):
            def step(n):
                seen.append(job.progress)
                job.gone = len(seen) >= 3  # the client leaves after a few chunks
                progress(n)
            return real(requests, progress=step)

        composer.compose_many = watched
        with pytest.raises(ClientsGone):
            await loop.run_in_executor(None, state._compose_batch, "tiny", [job])

    asyncio.run(scenario())
    assert len(seen) == 3 < 64 * 16 // 64  # stopped after 3 of its 16 chunks
    assert 0 < seen[1] < seen[2] < 1
    assert not list((tmp_path / "o").glob("*.mid"))


def test_progress_endpoint_follows_a_job_id_of_the_clients_choosing(client, monkeypatch):
    state = client.app.state.composer_state
    composer = state.composer("tiny")
    real, seen = composer.compose_many, []

    def slow(requests, progress=None):
        def step(n):
            progress(n)
            seen.append(client.get("/api/progress/00ff00ff00ff").json()["progress"])
        return real(requests, progress=step)

    monkeypatch.setattr(composer, "compose_many", slow)
    assert compose(client, bars=16, job="00ff00ff00ff").status_code == 200
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 4  # 16 bars: four chunks of 4
    assert client.get("/api/progress/00ff00ff00ff").status_code == 404  # finished: forgotten
    assert compose(client, job="not hex!").status_code == 422


def test_compose_in_a_chosen_key_and_meter_and_unknown_names_refused(client):
    r = compose(client, seed=5, n=2, key="D minor", meter="4/4")
    assert r.status_code == 200, r.text
    assert [(p["key"], p["meter"], p["bar_quarters"]) for p in r.json()["pieces"]] == [("D minor", "4/4", 4.0)] * 2
    for field, value, reason in (("key", "D dorian", "unknown key 'D dorian'"),
                                 ("meter", "5/4", "unknown meter '5/4' for this model")):
        r = compose(client, **{field: value})
        assert r.status_code == 400 and reason in r.json()["detail"]
