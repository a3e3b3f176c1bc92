# Two entry points, each creating or updating its own virtualenv (.venv):
#   make run    -- the main job: a sweep of the built-in 20-class space, stored in ./sweeps.db (SQLite)
#                  (make run ARGS=--quick for the smoke profile; SPACE=spaces/asl50.yaml for another)
#   make test   -- lint and the whole test suite (CI runs this)
# Both install with constraints.txt, whose torch==2.13.0 is a CPU wheel. TORCH=keep keeps the torch already in
# $(VENV) instead (a CUDA build you installed there first) and pins every other package as usual.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH ?= pinned
CONSTRAINTS := $(if $(filter keep,$(TORCH)),$(VENV)/constraints.txt,constraints.txt)

.PHONY: run test lint bench venv clean

$(STAMP): setup.cfg constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
ifeq ($(TORCH),keep)
	grep -v '^torch==' constraints.txt > $(VENV)/constraints.txt
	$(BIN)/python -c 'import importlib.metadata as m; print("torch==" + m.version("torch"))' >> $(VENV)/constraints.txt \
	    || { echo "TORCH=keep: install your torch into $(VENV) first (see README)" >&2; exit 1; }
endif
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev,postgres]'
	touch $(STAMP)

venv: $(STAMP)

SPACE ?= spaces/asl20.yaml
ARGS ?=

run: $(STAMP)
	$(BIN)/sweeper run $(SPACE) $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/core.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
