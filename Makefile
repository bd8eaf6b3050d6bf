# aisched — developer entry points. Every target sets up .venv on its own the first time.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo run test lint typecheck unit crds validate bench venv clean

demo: $(STAMP)  ## the scheduler on the embedded emulator (32 DGX H100 in 4 racks) with example jobs
	$(BIN)/aisched demo --cluster examples/clusters/dgx-h100-4racks.yaml --examples examples

run: $(STAMP)  ## the operator on the embedded emulator, until Ctrl-C (kubectl with ./aisched-emulator.kubeconfig)
	$(BIN)/aisched run --emulator --cluster examples/clusters/dgx-h100-4racks.yaml

test: lint typecheck unit  ## ruff, mypy --strict and every test

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[emulator,sim,dev]'
	@touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict tests

unit: $(STAMP)
	$(BIN)/pytest

crds: $(STAMP)  ## regenerate crds/ from the API models
	$(BIN)/aisched crds --output-dir crds

validate: $(STAMP)  ## validate the examples offline
	$(BIN)/aisched validate -f examples/

bench: $(STAMP)  ## benchmarks: JSON on stdout, a readable table on stderr
	$(BIN)/aisched bench core --nodes 5000 --json
	$(BIN)/aisched bench emulator --pods 3000 --json
	$(BIN)/aisched bench e2e --json
	$(BIN)/aisched bench sim --json
	$(BIN)/aisched bench fairness --json
	$(BIN)/aisched bench queue --json
	$(BIN)/aisched bench faults --json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
