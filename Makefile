# Two entry points: `make serve` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
FUZZ   := $(VENV)/fuzz

.PHONY: serve test install bench clean

$(STAMP): requirements.lock requirements-dev.lock requirements-fuzz.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -r requirements.lock
	# Test-only tools (hadolint, Helm as a library, Kubernetes schemas) for tests/deploy.
	$(BIN)/pip install -q -c constraints.txt -r requirements-dev.lock
	# chgnet pulls nvidia-ml-py3, which overwrites pynvml.py: restore the maintained one.
	$(BIN)/pip install -q --force-reinstall --no-deps $$(grep '^nvidia-ml-py==' requirements.lock)
	# mace-torch pins e3nn 0.4.4 (broken with torch 2.13; its models run with the locked 0.6.0): no deps,
	# its runtime imports (torch-ema, torchmetrics, prettytable, matscipy, ...) are in requirements.lock.
	$(BIN)/pip install -q --no-deps mace-torch==0.3.16
	$(BIN)/pip install -q --no-deps -e .
	# Schemathesis (tests/integration/test_fuzz.py) pins what this environment cannot take: its own venv.
	test -x $(FUZZ)/bin/python || $(PYTHON) -m venv $(FUZZ)
	$(FUZZ)/bin/pip install -q -r requirements-fuzz.lock
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/matserve serve

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=25

# Benchmarks (not tests): each prints its ratio against a baseline measured in the same run.
bench: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -r bench/requirements.txt
	$(BIN)/python -m bench.relax
	$(BIN)/python -m bench.relax_load
	$(BIN)/python -m bench.generate
	$(BIN)/python -m bench.csp --count 100 --group 4 --max-steps 150
	$(BIN)/python -m bench.alignn
	$(BIN)/python -m bench.forcefields

# The GPU machine's ALIGNN job (bench/device/), dry-run here on the CPU on a tiny corpus.
.PHONY: device-dry-run
device-dry-run: $(STAMP)
	$(BIN)/python -m pytest -q tests/bench/test_device_runner.py

clean:
	rm -rf $(VENV) .matserve
