import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def _shared_tmp(factory) -> Path:
    """A temp folder shared by all xdist workers of this run (the parent of each worker's base temp)."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(autouse=True)
def _test_cache(tmp_path_factory, monkeypatch):
    """Tests never touch the user's cache; workers share one (writes are atomic), so chorales parse once."""
    monkeypatch.setenv("GANCOMPOSER_CACHE", str(_shared_tmp(tmp_path_factory) / "gancomposer-cache"))


@pytest.fixture(scope="session")
def chorales_dir(tmp_path_factory) -> Path:
    """The bundled chorales prepared once per worker (parsing is shared through the cache)."""
    from gancomposer.dataset import prepare

    os.environ["GANCOMPOSER_CACHE"] = str(_shared_tmp(tmp_path_factory) / "gancomposer-cache")
    out = tmp_path_factory.mktemp("chorales")
    prepare([], out, corpus="bach-chorales", progress=False, log=lambda s: None)
    return out


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A small dataset folder: a dozen two-voice scale pieces in a few keys."""
    from helpers import scale_piece, write_piece

    from gancomposer.dataset import PrepareOptions, prepare

    src = tmp_path_factory.mktemp("tiny_src")
    for i in range(12):
        write_piece(src / f"p{i}.mid", scale_piece(offset=i % 4, bars=8))
    out = tmp_path_factory.mktemp("tiny_data")
    prepare([str(src)], out, options=PrepareOptions(valid_fraction=0.2), progress=False, log=lambda s: None)
    return out


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory) -> Path:
    """A run folder trained for a few seconds with the tiny preset."""
    from gancomposer.config import resolve
    from gancomposer.train import train

    run = tmp_path_factory.mktemp("tiny_run")
    train(tiny_data, run, resolve("tiny"), progress=False, log=lambda s: None)
    return run
