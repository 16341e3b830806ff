# Quick start: `make run` (install, then the whole pipeline on generated ml-1m-sized data)
# and `make test` (install, then lint, the import layering and the test suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= out/default

.PHONY: install run test lint package clean java

install: $(VENV)/.installed

java:
	@bash scripts/check_java.sh

$(VENV)/.installed: pyproject.toml constraints.txt | java
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,spark]'
	touch $@

run: install
	$(BIN)/rbm-reco run --conf local --out $(OUT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo

test: install lint
	$(BIN)/python -m pytest -q

package: install
	$(BIN)/python scripts/package.py

clean:
	rm -rf build dist *.egg-info out .pytest_cache
