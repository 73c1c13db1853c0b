# The commands of the README: `make test`, `make demo` (the command line, then the
# library) and `make bench`. Both build their own
# virtualenv, so they work on a fresh machine with nothing but python3.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: test demo bench venv clean

$(STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest --cov=s3po --cov-report=term-missing $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) demo/cli_session.py
	$(PY) demo/demo.py

bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .coverage
