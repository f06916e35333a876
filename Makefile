# deepSTRF-repro: every target installs what it needs itself.
#   make test                      the linter (ruff, pyproject.toml) and the test suite (CPU)
#   make figures [PROFILE=quick|paper] [DATASETS=ns1,nat4_a1] [NOTEBOOKS=04,05] [DEVICE=auto|cpu|cuda]
#                [EXECUTOR=local|submitit-local|slurm] [PLAN=1: print the cost plan, run nothing]
#                -> build/figures/<profile>/  (the committed gallery in figures/ is never touched)
#   make gallery                   regenerate the committed README gallery (quick profile) into figures/
#   make sweep PROFILE=paper [EXECUTOR=slurm]   submit the fits and return; run again to collect
#     (cluster options: CLUSTER_CONFIG=cluster.toml, SLURM_PARTITION, SLURM_GPUS, SLURM_TIME (min),
#      SLURM_MEM (GB), SLURM_PARALLEL, SLURM_SETUP, NEURONS_PER_JOB, MAX_PARALLEL)
#   make data DATASET=ns1|nat4_a1|nat4_peg|wehr
#   make lab [LAB_IP=0.0.0.0] [LAB_PORT=8888]   JupyterLab on the notebooks (no browser opened)
#   make bench / make bench-long   speed and memory benchmarks (print tables)
#   make test-floors               the test suite on the oldest dependency versions pyproject.toml admits
# PyTorch: TORCH=cpu (default: the CPU wheel, ~190 MB, on any Linux box) or TORCH=cuda (PyPI's CUDA
#   build, several GB); changing TORCH reinstalls torch. Conda / existing environment: PY=python.

PYTHON     ?= python3
VENV       ?= .venv
TORCH      ?= cpu
TORCH_VERSION ?= 2.13.0
# Index for the torch wheel; empty = the default of TORCH (cpu: PyTorch's CPU index; cuda: PyPI)
TORCH_INDEX ?=
PROFILE    ?= quick
DATASETS   ?=
NOTEBOOKS  ?=
DEVICE     ?= auto
DATASET    ?=
EXECUTOR   ?= local
PLAN       ?=
LAB_IP     ?= 127.0.0.1
LAB_PORT   ?= 8888
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

# PY: the interpreter everything runs with. Default: the project's own venv, created and managed
# here. Set PY=python (e.g. inside `conda activate deepstrf`) to use an existing environment: the
# Makefile then never creates a venv, never upgrades pip and never touches torch in it.
PY         ?= $(VENV)/bin/python
OWN_VENV   := $(if $(filter $(VENV)/bin/python,$(PY)),1,)
# install stamps: inside the project's own venv; for a foreign environment (PY=...) in build/,
# keyed by the interpreter, never inside that environment
STAMP_DIR  := $(if $(OWN_VENV),$(VENV),build/.stamps/$(subst /,_,$(subst .,_,$(PY))))
STAMP      := $(STAMP_DIR)/.installed-base
LAB_STAMP  := $(STAMP_DIR)/.installed-lab
CLUSTER_STAMP := $(STAMP_DIR)/.installed-cluster
TORCH_STAMP := $(STAMP_DIR)/.installed-torch
FLOORS_VENV := .venv-floors

# the torch install command of each variant: the CPU wheel comes from PyTorch's CPU index (pip
# prefers 2.13.0+cpu there; --find-links / extra indexes configured for pip still apply, which is
# how a machine without access to download.pytorch.org finds a local +cpu file), never PyPI's
# default Linux wheel, which is the multi-GB CUDA build
UNAME_S    := $(shell uname -s)
TORCH_PKG_cpu  := torch==$(TORCH_VERSION)$(if $(filter Linux,$(UNAME_S)),+cpu,)
TORCH_IDX_cpu  := $(if $(filter Linux,$(UNAME_S)),--index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple,)
TORCH_PKG_cuda := torch==$(TORCH_VERSION)
TORCH_IDX_cuda :=
TORCH_PKG  = $(TORCH_PKG_$(TORCH))
TORCH_IDX  = $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) --extra-index-url https://pypi.org/simple,$(TORCH_IDX_$(TORCH)))

# $(call install_torch,PYTHON): install TORCH_PKG. Where download.pytorch.org does not resolve (an
# offline cluster, this project's CI) the CPU wheel must come from pip's own configured sources
# (--find-links / a mirror); the result is checked to be the build that was asked for.
define install_torch
idx='$(TORCH_IDX)'; \
if [ -z "$(TORCH_INDEX)" ] && [ -n "$$idx" ] && ! $(1) -c "import socket; socket.getaddrinfo('download.pytorch.org', 443)" 2>/dev/null; then \
	echo "download.pytorch.org does not resolve: $(TORCH_PKG) from pip's configured sources"; idx=''; fi; \
$(1) -m pip install --quiet --retries 1 --timeout 30 $$idx "$(TORCH_PKG)" \
	|| { echo "error: could not install $(TORCH_PKG); pass TORCH_INDEX=<an index serving it> or TORCH=cuda" >&2; exit 1; }; \
$(1) -c 'import sys, torch; cuda = torch.version.cuda is not None; sys.exit(cuda != ("$(TORCH)" == "cuda" and sys.platform == "linux"))' \
	|| { echo "error: pip installed a torch build other than TORCH=$(TORCH) asked for" >&2; exit 1; }
endef

# the test suite and the headless notebook runs draw off-screen; `make lab` keeps the user's
# backend (inline figures in JupyterLab)
HEADLESS   := MPLBACKEND=Agg PYTHONHASHSEED=0

BENCH_QUICK := bench_adaptrans bench_metrics bench_models bench_training bench_conv bench_jobs bench_files bench_nwb bench_stimulus_check bench_upstream bench_transformer bench_vision
BENCH_LONG  := bench_fit bench_fit_quality bench_interpret recovery_synthetic profile_fit check_torc_split bench_sessions_state

.PHONY: test test-floors figures gallery sweep data lab bench bench-long env clean help
.DEFAULT_GOAL := help

help:
	@sed -n '2,17p' Makefile

$(VENV)/pyvenv.cfg:
	@$(PYTHON) -c 'import sys; v = sys.version_info; assert v >= (3, 11), "deepSTRF-repro needs Python >= 3.11, found %d.%d: run make PYTHON=python3.11 (or newer)" % v[:2]' \
		|| { echo "error: $(PYTHON) is older than Python 3.11 (or missing); pass PYTHON=python3.11" >&2; exit 2; }
	@$(PYTHON) -m venv $(VENV) || { echo "error: could not create $(VENV): on Debian/Ubuntu install the venv module (apt install python3-venv)" >&2; exit 2; }

# Reinstalls only when pyproject.toml or the torch variant changes; the package is editable.
$(STAMP): pyproject.toml $(if $(OWN_VENV),$(VENV)/pyvenv.cfg)
	@mkdir -p $(STAMP_DIR)
	@case "$(TORCH)" in cpu|cuda) ;; *) echo "error: expected TORCH=cpu or TORCH=cuda, got TORCH=$(TORCH)" >&2; exit 2;; esac
ifeq ($(OWN_VENV),1)
	$(PY) -m pip install --quiet --upgrade pip
	@want="$(TORCH)-$(TORCH_VERSION)-$(TORCH_INDEX)"; have="$$(cat $(TORCH_STAMP) 2>/dev/null)"; \
	if [ "$$have" != "$$want" ]; then \
		echo "installing PyTorch $(TORCH_VERSION) ($(TORCH) build$(if $(filter cpu,$(TORCH)),: ~190 MB download, ~1 min,: several GB of CUDA libraries))"; \
		$(PY) -m pip uninstall --quiet --yes torch >/dev/null 2>&1; \
		$(call install_torch,$(PY)) || exit 1; \
		echo "$$want" > $(TORCH_STAMP); \
	fi
	$(PY) -c 'import torch; print("torch", torch.__version__, "CUDA build" if torch.version.cuda else "CPU build")'
else
	@$(PY) -c 'import torch' 2>/dev/null || { echo "error: PY=$(PY) has no torch; install it in that environment first (see environment.yml)" >&2; exit 2; }
endif
	$(PY) -m pip install --quiet -e ".[test,notebooks]"
	@touch $@

env: $(STAMP)
	@want="$(TORCH)-$(TORCH_VERSION)-$(TORCH_INDEX)"; \
	if [ "$(OWN_VENV)" = "1" ] && [ "$$(cat $(TORCH_STAMP) 2>/dev/null)" != "$$want" ]; then \
		rm -f $(STAMP); $(MAKE) --no-print-directory $(STAMP); fi

test: env
	$(PY) -m ruff check deepstrf_utils tests benchmarks scripts
	$(HEADLESS) $(PY) -m pytest -q -p no:cacheprovider tests

# the oldest versions of every dependency that pyproject.toml admits (its >= floors), with the same torch
test-floors: env
	@test -f $(FLOORS_VENV)/pyvenv.cfg || $(PYTHON) -m venv $(FLOORS_VENV)
	@mkdir -p build && $(PY) scripts/dependency_floors.py > build/floors.txt
	@$(FLOORS_VENV)/bin/python -c 'import torch' 2>/dev/null || { $(call install_torch,$(FLOORS_VENV)/bin/python); }
	$(FLOORS_VENV)/bin/python -m pip install --quiet -r build/floors.txt
	$(FLOORS_VENV)/bin/python -m pip install --quiet --no-deps -e .
	$(FLOORS_VENV)/bin/python scripts/dependency_floors.py --check
	$(HEADLESS) $(FLOORS_VENV)/bin/python -m pytest -q -p no:cacheprovider tests

figures: env $(if $(filter local,$(EXECUTOR)),,$(CLUSTER_STAMP))
	$(HEADLESS) $(PY) scripts/run_notebooks.py --profile "$(PROFILE)" --datasets "$(DATASETS)" --device "$(DEVICE)" \
		--only "$(NOTEBOOKS)" --executor "$(EXECUTOR)" $(CLUSTER_ARGS) $(if $(PLAN),--plan)

# the README's gallery: the quick profile on the built-in synthetic data, copied into figures/
gallery: env
	$(HEADLESS) $(PY) scripts/run_notebooks.py --profile quick --datasets "" --device cpu --only "$(NOTEBOOKS)"
	$(PY) scripts/run_notebooks.py --publish-gallery build/figures/quick

# submits without waiting (default EXECUTOR=slurm); the same command again collects
sweep: env $(CLUSTER_STAMP)
	$(PY) -m deepstrf_utils.runs --profile "$(PROFILE)" --datasets "$(DATASETS)" --device "$(DEVICE)" \
		--executor "$(if $(filter local,$(EXECUTOR)),slurm,$(EXECUTOR))" $(CLUSTER_ARGS)

$(CLUSTER_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[cluster]"
	@touch $@

data: env
	@if [ -z "$(DATASET)" ]; then echo "usage: make data DATASET=ns1|nat4_a1|nat4_peg|wehr" >&2; exit 2; fi
	$(PY) -m deepstrf_utils.datasets.download "$(DATASET)" --root data

$(LAB_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[lab]"
	@touch $@

# no browser (remote and cluster nodes: open the printed URL, through `ssh -L 8888:localhost:8888`);
# --allow-root only when running as root (containers), where Jupyter refuses to start without it
lab: env $(LAB_STAMP)
	env -u MPLBACKEND $(PY) -m jupyter lab --notebook-dir=notebooks --no-browser --ip=$(LAB_IP) \
		--port=$(LAB_PORT) $(if $(filter 0,$(shell id -u)),--allow-root,)

bench: env
	@for b in $(BENCH_QUICK); do echo "== benchmarks/$$b.py"; $(PY) benchmarks/$$b.py || exit 1; done

bench-long: env
	@for b in $(BENCH_LONG); do echo "== benchmarks/$$b.py"; $(PY) benchmarks/$$b.py || exit 1; done

clean:
	rm -rf build .pytest_cache
