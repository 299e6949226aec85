# Two commands are the whole set-up: `make repro` runs the benchmark, `make test` runs the tests.
# The virtual environment (torch is ~5.5 GB) lives once per machine, outside the clone, and is
# refreshed only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= $(HOME)/.cache/camloc/venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.camloc-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: repro test test-slow lint bench venv clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, from the pinned builds, so no dependency pulls another torch build.
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.camloc-* && touch $@

venv: $(STAMP)
	@$(BIN)/pip install -q --no-deps --no-build-isolation -e . >/dev/null

repro: venv
	PATH=$(BIN):$$PATH $(BIN)/dvc repro

test: venv
	PATH=$(BIN):$$PATH $(BIN)/python -m pytest -q

test-slow: venv
	PATH=$(BIN):$$PATH $(BIN)/python -m pytest -q -m slow

lint: venv
	$(BIN)/ruff check pipeline tests benchmarks

bench: venv
	@for b in benchmarks/bench_*.py; do echo "== $$b"; PATH=$(BIN):$$PATH $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
