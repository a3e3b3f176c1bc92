# Two entry points, each creating or updating its own virtualenv (.venv):
#   make run    -- the main job: a sweep of the built-in 20-class space, stored in ./sweeps.db (SQLite)
#                  (make run ARGS=--quick for the 3-minute smoke profile; SPACE=spaces/asl50.yaml for another)
#   make test   -- lint and the whole test suite (CI runs this)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench venv clean

$(STAMP): setup.cfg constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,postgres]'
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
