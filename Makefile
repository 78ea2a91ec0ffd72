# The front door: bootstrap, build, run, test, bench. See README.md.
VENV      := .venv
VENV_GIL  := .venv-gil
PY        := $(VENV)/bin/python
PY_GIL    := $(VENV_GIL)/bin/python
PORT      ?= 8080
PIP_BUILD := -m pip install -q --no-build-isolation --no-deps

.PHONY: all bootstrap build build-gil run lint test test-c test-py bench soak sanitize tsan fuzz clean db db-stop

all: build

bootstrap: $(VENV)/.px-bootstrap
$(VENV)/.px-bootstrap: tools/bootstrap-python tools/requirements-test.txt
	./tools/bootstrap-python

build: bootstrap
	$(PY) $(PIP_BUILD) -Cbuild-dir=build/cp-ft .

build-gil: bootstrap
	$(PY_GIL) $(PIP_BUILD) -Cbuild-dir=build/cp-gil .

run: build
	$(PY) -m pyparallel.demo --port $(PORT)

# clang-format, ruff and mypy --strict (tools/lint; settings in .clang-format, pyproject.toml).
lint: bootstrap
	./tools/lint

# Lint, the C unit tests, then the Python suites on both interpreters (each on both backends).
test: lint build build-gil test-c test-py

test-c: bootstrap
	@[ -f build/ctest/build.ninja ] || $(VENV)/bin/meson setup build/ctest -Dtests=true -Dpython=false >/dev/null
	$(VENV)/bin/meson test -C build/ctest --print-errorlogs

test-py: build build-gil
	$(PY) -m pytest -q tests/py
	$(PY_GIL) -m pytest -q tests/py

bench: build build-gil
	./tools/bench-deps
	$(PY) bench/run.py

# Mixed normal and hostile load against one server for SOAK_SECONDS (default 30 min);
# not part of `test`. CSV, chart and server log in bench/results/raw/ (docs/soak.md).
soak: build build-gil
	$(PY_GIL) bench/soak.py --seconds $(or $(SOAK_SECONDS),1800) --server-python $(PY)

# ASan+UBSan: the C tests and the Python suites against an instrumented module.
sanitize: bootstrap
	./tools/sanitize asan

tsan: bootstrap
	./tools/sanitize tsan

fuzz: bootstrap
	./tools/fuzz $(or $(FUZZ_SECONDS),120)

# A PostgreSQL with TechEmpower's database for development (tools/pg-cluster), in
# $(DB_DIR); a second `make db` only prints its DSN. `make db-stop` removes it.
DB_DIR ?= build/db
db:
	@dsn=$$(./tools/pg-cluster start $(DB_DIR)) && echo "PostgreSQL in $(DB_DIR): $$dsn" \
		&& echo "stop it (and drop its data) with: make db-stop"

db-stop:
	./tools/pg-cluster stop $(DB_DIR)

clean:
	@[ ! -f $(DB_DIR)/cluster.json ] || ./tools/pg-cluster stop $(DB_DIR)
	rm -rf build
