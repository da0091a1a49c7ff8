# dlmi-workflow. `make run`: install + default study + report. `make test`: install + the whole suite.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
CONFIG ?= config/config.yaml
OUT ?= results
SMK := $(BIN)/snakemake --configfile $(CONFIG) --config output_dir=$(OUT)
# The CPU torch wheel lies on local disk; point pip at it when the folder exists.
PIP_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: install run unlock test bench plan dry-run report lint clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(PIP_LINKS) -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@

# --rerun-incomplete: a job cut off by a kill re-runs instead of stopping the run (Snakemake refuses
# files it marked incomplete without it). After a SIGKILL or power loss the folder stays locked: `make unlock run`.
run: install
	$(SMK) --cores $(CORES) --rerun-incomplete
	$(MAKE) report

unlock: install
	$(SMK) --unlock

report: install
	$(SMK) --cores 1 --report $(OUT)/report.html

dry-run: install
	$(SMK) --cores $(CORES) --dry-run --quiet rules

# `make plan SUBJECTS=1000 PROFILE=config/profiles/slurm-gpu`: jobs per rule, CPU/GPU-hours, peak memory.
plan: install
	$(BIN)/python -m dlmi.planning --configfile $(CONFIG) --benchmarks benchmarks \
		$(if $(SUBJECTS),--subjects $(SUBJECTS)) $(if $(PROFILE),--profile $(PROFILE))

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest tests

bench: install
	$(BIN)/python bench/run.py

lint: $(VENV)/.installed-test
	$(BIN)/snakemake --lint --configfile $(CONFIG)
	$(BIN)/ruff check scripts tests bench

clean:
	rm -rf results logs benchmarks .snakemake .pytest_cache
