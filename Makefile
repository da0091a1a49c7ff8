# dlmi-workflow. `make run`: install + default study + report. `make test`: install + the whole suite.
# `make test-fast`: the suite without the end-to-end studies.
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

.PHONY: install run unlock test test-fast bench plan dry-run report lint clean train-unet dicom-to-bids

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

# `make plan SUBJECTS=1000 PROFILE="config/profiles/slurm config/profiles/slurm-gpu"`: jobs per rule,
# CPU/GPU-hours, peak memory, from the resources the profiles (given in this order) ask SLURM for.
plan: install
	$(BIN)/python -m dlmi_workflow.planning --configfile $(CONFIG) --benchmarks benchmarks \
		$(if $(SUBJECTS),--subjects $(SUBJECTS)) $(foreach profile,$(PROFILE),--profile $(profile))

# The U-Net that the default study segments with: trained on its own simulated cohort (config/train-unet.yaml,
# CPU, deterministic), then copied to resources/unet/unet.pt (segmentation.unet.checkpoint).
train-unet: install
	$(BIN)/snakemake --configfile $(CONFIG) config/train-unet.yaml --config output_dir=$(OUT) --cores $(CORES) \
		--rerun-incomplete $(OUT)/training/unet/unet.pt
	mkdir -p resources/unet && cp $(OUT)/training/unet/unet.pt $(OUT)/training/unet/unet.json resources/unet/

# A step before a study of your own scans: `make dicom-to-bids DICOM=dicom BIDS=rawdata` converts each
# subject folder of DICOM series (dcm2niix) into a BIDS dataset, logged to logs/dicom_to_bids.log; then run
# the study with input.bids_dir: rawdata (docs/bids.md).
dicom-to-bids: install
	$(BIN)/python -m dlmi_workflow.dicom $(DICOM) $(BIDS)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest tests

# Everything but the end-to-end studies (tests marked slow, or using a study fixture): a few minutes.
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest tests -m "not slow"

bench: install
	$(BIN)/python bench/run.py

lint: $(VENV)/.installed-test
	$(BIN)/snakemake --lint --configfile $(CONFIG)
	$(BIN)/snakefmt --check workflow
	$(BIN)/ruff check scripts tests bench

clean:
	rm -rf results logs benchmarks .snakemake .pytest_cache
