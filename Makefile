# Two entry points, each creating or updating its own virtualenv (.venv):
#   make run    -- the main job: a sweep of the built-in 20-class space, stored in ./sweeps.db (SQLite)
#                  (make run ARGS=--quick for the smoke profile; SPACE=spaces/asl50.yaml for another)
#   make test   -- lint and the whole test suite (CI runs this)
# (make test-floors runs the same suite against setup.cfg's floors, constraints-floors.txt, in .venv-floors.)
# Both install with constraints.txt (torch==2.13.0: a CPU wheel on our machines, CUDA from PyPI on Linux x86_64).
# TORCH=keep keeps the torch already in $(VENV) instead (a CUDA build you installed there first) and pins every
# other package as usual. PYTHON=python3.13 VENV=.venv-313 builds a venv of another Python beside .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH ?= pinned
CONSTRAINTS := $(if $(filter keep,$(TORCH)),$(VENV)/constraints.txt,constraints.txt)

.PHONY: run test test-floors lint bench venv clean check-venv

# a .venv that lost a package (pip still lists it, so a reinstall would skip it) says so, not with a traceback;
# only one that make finished ($(STAMP)): a .venv made by hand for TORCH=keep holds torch alone until make installs
REQUIRED := optuna ray torch pydantic typer sqlalchemy plotly optuna_dashboard yaml rich
check-venv:
	@test ! -f $(STAMP) || test ! -x $(BIN)/python || $(BIN)/python -c 'import importlib.util as u, sys; \
	    lost = ", ".join(m for m in sys.argv[1:] if u.find_spec(m) is None); \
	    hint = ": rebuild it with make clean venv (with TORCH=keep, install your torch into it first again)"; \
	    sys.exit(lost and "$(VENV) lacks " + lost + hint or None)' $(REQUIRED)

$(STAMP): setup.cfg constraints.txt pyproject.toml $(filter constraints-floors.txt,$(CONSTRAINTS))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
ifeq ($(TORCH),keep)
	grep -v '^torch==' constraints.txt > $(VENV)/constraints.txt
	$(BIN)/python -c 'import importlib.metadata as m; print("torch==" + m.version("torch"))' >> $(VENV)/constraints.txt \
	    || { echo "TORCH=keep: install your torch into $(VENV) first (see README)" >&2; exit 1; }
endif
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev,postgres]'
	touch $(STAMP)

venv: check-venv $(STAMP)

SPACE ?= spaces/asl20.yaml
ARGS ?=

run: check-venv $(STAMP)
	$(BIN)/sweeper run $(SPACE) $(ARGS)

# Two pytest workers: much of the suite waits (on outages, kills, timeouts) while the other worker trains; each
# worker starts one Ray for its in-process sweeps and has a PostgreSQL database of its own (tests/conftest.py).
# worksteal: each worker starts with a contiguous half (a module's fixtures are made once, not on both workers, as
# round-robin would), and one that runs dry takes over the other's remaining tests, so neither waits at the end.
TEST_WORKERS ?= 2

test: check-venv $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# the same suite against setup.cfg's floors (constraints-floors.txt) in a venv of its own; CI tests the pins alone
test-floors:
	$(MAKE) test VENV=.venv-floors CONSTRAINTS=constraints-floors.txt

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/core.py

clean:
	rm -rf $(VENV) .venv-* *.egg-info .pytest_cache .ruff_cache
