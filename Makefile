# deepSTRF-repro: every target installs what it needs itself.
#   make test                      run the test suite (CPU, < 10 min)
#   make figures [PROFILE=quick|paper] [DATASETS=ns1,nat4_a1] [DEVICE=auto|cpu|cuda]
#                [EXECUTOR=local|submitit-local|slurm] [PLAN=1: print the cost plan, run nothing]
#   make sweep PROFILE=paper [EXECUTOR=slurm]   submit the fits and return; run again to collect
#     (cluster options: CLUSTER_CONFIG=cluster.toml, SLURM_PARTITION, SLURM_GPUS, SLURM_TIME (min),
#      SLURM_MEM (GB), SLURM_PARALLEL, SLURM_SETUP, NEURONS_PER_JOB, MAX_PARALLEL)
#   make data DATASET=ns1|nat4_a1|nat4_peg|wehr
#   make lab                       JupyterLab on the notebooks
#   make bench                     speed and memory benchmarks (prints tables)
# GPU users: make figures TORCH_SPEC=torch   (or use environment.yml with conda)

PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
# Index for torch only, e.g. https://download.pytorch.org/whl/cpu where PyPI's default
# Linux wheel is the CUDA build (empty: pip's configured index, which serves the CPU build here)
TORCH_INDEX ?=
PROFILE    ?= quick
DATASETS   ?=
DEVICE     ?= auto
DATASET    ?=
EXECUTOR   ?= local
PLAN       ?=
CLUSTER_CONFIG ?=
SLURM_PARTITION ?=
SLURM_GPUS ?=
SLURM_TIME ?=
SLURM_MEM  ?=
SLURM_PARALLEL ?=
SLURM_SETUP ?=
NEURONS_PER_JOB ?=
MAX_PARALLEL ?=
CLUSTER_ARGS = $(if $(CLUSTER_CONFIG),--cluster-config "$(CLUSTER_CONFIG)") \
	--set "partition=$(SLURM_PARTITION)" --set "gpus_per_job=$(SLURM_GPUS)" --set "time_min=$(SLURM_TIME)" \
	--set "mem_gb=$(SLURM_MEM)" --set "array_parallelism=$(SLURM_PARALLEL)" --set "setup=$(SLURM_SETUP)" \
	--set "neurons_per_job=$(NEURONS_PER_JOB)" --set "max_parallel=$(MAX_PARALLEL)"
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed-base
LAB_STAMP  := $(VENV)/.installed-lab
CLUSTER_STAMP := $(VENV)/.installed-cluster

export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: test figures sweep data lab bench env clean help
.DEFAULT_GOAL := help

help:
	@sed -n '2,12p' Makefile

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "deepSTRF-repro needs Python >= 3.10, found " + sys.version'
	$(PYTHON) -m venv $(VENV)

# Reinstalls only when pyproject.toml (or the torch spec) changes; the package is editable.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test,notebooks]"
	echo "$(TORCH_SPEC)" > $@

env: $(STAMP)
	@if [ "$$(cat $(STAMP))" != "$(TORCH_SPEC)" ]; then rm -f $(STAMP); $(MAKE) --no-print-directory $(STAMP); fi

test: env
	$(PY) -m pytest -q -p no:cacheprovider tests

figures: env $(if $(filter local,$(EXECUTOR)),,$(CLUSTER_STAMP))
	$(PY) scripts/run_notebooks.py --profile "$(PROFILE)" --datasets "$(DATASETS)" --device "$(DEVICE)" \
		--executor "$(EXECUTOR)" $(CLUSTER_ARGS) $(if $(PLAN),--plan)

# submits without waiting (default EXECUTOR=slurm); the same command again collects
sweep: env $(CLUSTER_STAMP)
	$(PY) -m deepstrf_utils.sweep --profile "$(PROFILE)" --datasets "$(DATASETS)" --device "$(DEVICE)" \
		--executor "$(if $(filter local,$(EXECUTOR)),slurm,$(EXECUTOR))" $(CLUSTER_ARGS)

$(CLUSTER_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[cluster]"
	touch $@

data: env
	@if [ -z "$(DATASET)" ]; then echo "usage: make data DATASET=ns1|nat4_a1|nat4_peg|wehr" >&2; exit 2; fi
	$(PY) -m deepstrf_utils.datasets.download "$(DATASET)" --root data

$(LAB_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[lab]"
	touch $@

lab: env $(LAB_STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

bench: env
	$(PY) benchmarks/bench_adaptrans.py
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_models.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_conv.py
	$(PY) benchmarks/bench_jobs.py
	$(PY) benchmarks/bench_vision.py

clean:
	rm -rf build .pytest_cache
