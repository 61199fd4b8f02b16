"""The package's shape: the music half needs no torch, the CLI holds no torch code, files and functions stay
readable, and the training settings document themselves."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "gancomposer"
#: Reading, encoding, data preparation, metrics, evaluation, audio, pictures and settings.
MUSIC_HALF = ["gancomposer", "gancomposer.io", "gancomposer.io.midi", "gancomposer.io.score", "gancomposer.encoding",
              "gancomposer.dataset", "gancomposer.metrics", "gancomposer.evaluate", "gancomposer.baselines",
              "gancomposer.audio", "gancomposer.plots", "gancomposer.render", "gancomposer.corpora",
              "gancomposer.config", "gancomposer.cli"]


def test_the_music_half_imports_without_torch():
    # torch made unimportable: any import of it, however indirect, fails the subprocess
    code = ("import sys; sys.modules['torch'] = None\n"
            + "".join(f"import {m}\n" for m in MUSIC_HALF)
            + "import gancomposer.plots as p, numpy as np\n"
              "from gancomposer.encoding import PianoRoll\n"
              "from gancomposer.metrics import feature_matrix\n"
              "feature_matrix(np.zeros((1, 16, 5), np.uint8), PianoRoll(4, 60, 64), 16)\n"
              "print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_cli_and_web_layers_hold_no_torch_code():
    for path in (SRC / "cli.py", SRC / "web" / "app.py"):
        assert not any(n == "torch" or n.startswith("torch.") for n in _imports(path)), path


def _functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_no_function_over_80_lines(path):
    long = [(f.name, f.end_lineno - f.lineno + 1) for f in _functions(ast.parse(path.read_text()))
            if f.end_lineno - f.lineno + 1 > 80]
    assert not long, long


def test_the_training_loop_fits_on_a_few_screens():
    assert len((SRC / "train.py").read_text().splitlines()) < 300


def test_every_setting_has_help_text_and_help_config_lists_it(capsys):
    from dataclasses import fields

    from gancomposer.cli import main
    from gancomposer.config import AUTO_SETTINGS, PRESETS, ModelConfig, TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help-config"])
    out = capsys.readouterr().out
    for cls in (ModelConfig, TrainConfig):
        for f in fields(cls):
            assert f.metadata.get("help"), f.name
            shown = "'auto'" if f.name in AUTO_SETTINGS else repr(f.default)
            assert f"\n{f.name} = {shown}" in out and f.metadata["help"] in out, f.name
    assert all(f"preset {name}:" in out for name in PRESETS)
    assert "[gan | wgan-gp | hinge | lsgan]" in out


def test_model_and_training_settings_are_disjoint():
    from dataclasses import fields

    from gancomposer.config import RENAMED, ModelConfig, TrainConfig

    model, train = {f.name for f in fields(ModelConfig)}, {f.name for f in fields(TrainConfig)}
    assert not model & train
    assert set(RENAMED.values()) <= model | train and not set(RENAMED) & (model | train)
