# Two commands set everything up: `make demo` and `make test`.
# PyTorch is installed first, pinned, so pip never pulls a multi-GB CUDA build for the `torch>=2.4` requirement.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# System packages, installed where apt is usable (root, Debian); skipped quietly elsewhere.
APT    := $(shell command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && echo apt-get)

.PHONY: install demo test bench audio-deps browser-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# FluidSynth and a General MIDI soundfont for realistic audio; without them a built-in synthesizer is used.
audio-deps:
	@if [ -n "$(APT)" ] && ! command -v fluidsynth >/dev/null 2>&1; then \
	  echo "installing fluidsynth and fluid-soundfont-gm (apt) ..."; \
	  (apt-get update -qq && apt-get install -y -qq fluidsynth fluid-soundfont-gm >/dev/null) \
	    || echo "could not install fluidsynth; audio will use the built-in synthesizer"; fi

# Headless Chromium for the browser test; without it that one test is skipped with the reason.
browser-deps:
	@if [ -n "$(APT)" ] && ! command -v chromium >/dev/null 2>&1; then \
	  echo "installing chromium and chromium-driver (apt) for the browser test ..."; \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) \
	    || echo "could not install chromium; the browser test will be skipped"; fi

demo: $(STAMP) audio-deps
	$(PY) -m gancomposer demo

test: $(STAMP) audio-deps browser-deps
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadfile -q

bench: $(STAMP)
	$(PY) benchmarks/prepare.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/generate.py
	$(PY) benchmarks/serve_load.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
