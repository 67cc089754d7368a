# The two commands a newcomer needs:  `make app`  and  `make test`.  Each does all of its own set-up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export SEA_HOME ?= $(CURDIR)/.sea

.PHONY: setup venv image app test lint bench clean-sandbox

setup: venv image            ## Python deps in a venv, the sandbox image, the embedding model

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

image: venv                  ## build the sandbox image if it is missing (offline build where no registry answers)
	$(PY) -m sandbox build-image

app: setup                   ## run the Streamlit app
	$(VENV)/bin/streamlit run ui/app.py

test: setup                  ## run the whole test suite (starts the services the tests need)
	bash scripts/test_services.sh
	set -a; [ -f $(SEA_HOME)/test-services.env ] && . $(SEA_HOME)/test-services.env; set +a; \
	  $(VENV)/bin/ruff check . && $(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) -m bench.sandbox
	$(PY) -m bench.retrieval --tools ../shared/bench/retrieval-dev/tools.jsonl --queries ../shared/bench/retrieval-dev/queries.jsonl

clean-sandbox: venv          ## remove leftover sandbox containers
	$(PY) -m sandbox janitor
