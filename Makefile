# musicsync: `make run` serves on the embedded defaults, `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
BUF    := npx --yes @bufbuild/buf@1.75.0

.PHONY: run test protos protos-check lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps make re-installation happen only when the dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/musicsync serve

test: $(VENV)/.installed-dev protos-check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

protos: $(VENV)/.installed-dev
	$(BIN)/python scripts/gen_protos.py

protos-check: $(VENV)/.installed-dev
	$(BIN)/python scripts/gen_protos.py --check

# buf comes from the npm registry; skipped (with a note) where npx is missing.
lint:
	@if command -v npx >/dev/null; then cd protos && $(BUF) lint && echo "buf lint: ok"; \
	else echo "buf lint skipped: npx not found"; fi

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/transfer.py
	$(BIN)/python bench/diff.py

clean:
	rm -rf $(VENV) .pytest_cache
