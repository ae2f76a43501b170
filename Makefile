# bayescale: `make demo` runs the main job on the bundled data, `make test` runs the tests.
# Both create .venv themselves with a Python >= 3.12 found by scripts/find-python.sh
# (set PYTHON=/path/to/python3.12 to choose one).

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv clean

$(STAMP): pyproject.toml
	@set -e; \
	if [ ! -x "$(PY)" ] || ! "$(PY)" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	  interp=$$(bash scripts/find-python.sh) || exit 1; \
	  echo "creating $(VENV) with $$interp"; \
	  rm -rf $(VENV); "$$interp" -m venv $(VENV); \
	fi
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bayescale demo --out demo_out

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check bayescale tests benchmarks notebooks docs
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) demo_out .pytest_cache
