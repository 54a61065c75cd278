# make demo | make test | make bench | make lint  (each creates .venv on first use)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench fuzz stress clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check otel_runctx tests benchmarks examples
	$(PY) -m ruff format --check otel_runctx tests benchmarks examples
	$(PY) -m mypy

test: lint
	$(PY) -m pytest -q

demo:
	@test -f $(STAMP) || echo "make demo: creating $(VENV) and installing otel-runctx (first run only, about a minute)..."
	@$(MAKE) --no-print-directory $(STAMP)
	$(PY) examples/run_demo.py

fuzz: $(STAMP)
	RUNCTX_FUZZ_EXAMPLES=$${RUNCTX_FUZZ_EXAMPLES:-20000} $(PY) -m pytest -q tests/test_fuzz_*.py

# Slow, bounded stress tests (minutes each; tests marked `stress`); .ci/run runs them after make test.
stress: $(STAMP)
	RUNCTX_STRESS=1 $(PY) -m pytest -q -m stress

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
