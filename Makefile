# trustnas-nb — two commands on a fresh machine:
#   make reproduce   create .venv, install, run every experiment notebook at SCALE (default cpu), write outputs/REPORT.md
#   make test        create/update .venv with the dev extras, run pytest and nbdev-test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
SCALE ?= cpu
# two notebooks at a time on the 2-core machines this is budgeted for (one torch thread each); one at a time at paper scale (one GPU)
JOBS ?= $(if $(filter paper,$(SCALE)),1,2)
ONLY ?=
# FORCE=1 reruns notebooks whose committed/earlier outputs are still complete
FORCE ?=
PYTEST_WORKERS ?= 2
# torch is pinned to the build this project is tested with; override e.g. TORCH_SPEC="torch torchvision"
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: reproduce test pytest nbtest nb venv dev docs docs-executed dry-run bench bench-bounds bench-dsrna bench-sanas bench-text bench-lbg bench-iuc bench-seeds bench-robbench clean-outputs

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.base-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --disable-pip-version-check -q $(TORCH_SPEC)
	$(PIP) install --disable-pip-version-check -q -e ".[trust]"
	@touch $@

$(VENV)/.dev-installed: $(VENV)/.base-installed pyproject.toml
	$(PIP) install --disable-pip-version-check -q -e ".[trust,dev,ray]"
	@# nbdev 3 names its commands nbdev-export etc.; keep the classic underscore names working too
	@for c in export clean test; do ln -sf nbdev-$$c $(VENV)/bin/nbdev_$$c; done
	@touch $@

venv: $(VENV)/.base-installed
dev: $(VENV)/.dev-installed

reproduce: $(VENV)/.base-installed
	$(VENV)/bin/trustnas reproduce --scale $(SCALE) --jobs $(JOBS) $(if $(ONLY),--only '$(ONLY)',) $(if $(FORCE),--force,)

test: $(VENV)/.dev-installed
	$(MAKE) --no-print-directory pytest nbtest docs

# two pytest-xdist workers (one torch thread each, tests/conftest.py); the longest tests start first
pytest: $(VENV)/.dev-installed
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=25

# every notebook in nbs/ runs at its defaults; experiment notebooks run through papermill in pytest (ci scale)
nbtest: $(VENV)/.dev-installed
	cd nbs && OMP_NUM_THREADS=1 ../$(VENV)/bin/nbdev-test --n-workers 2 --skip-folder-re '^(experiments|[_.].*)$$' --timing

# paper-scale readiness on any machine: every experiment's models at the thesis' sizes, a few steps on random tensors
dry-run: $(VENV)/.base-installed
	$(VENV)/bin/trustnas reproduce --scale paper --dry-run $(if $(ONLY),--only '$(ONLY)',)

# the documentation site in _docs/ (notebooks as committed, experiments as executed in outputs/, API pages, the report)
# and its internal-link check; part of `make test`
docs: $(VENV)/.dev-installed
	$(PY) nbs/make_docs.py
# the same with every notebook of nbs/ executed first, so chapter pages show their plots (slow: ~14 min on 2 cores)
docs-executed: $(VENV)/.dev-installed
	OMP_NUM_THREADS=1 $(PY) nbs/make_docs.py --execute --jobs 2

nb: $(VENV)/.dev-installed
	$(VENV)/bin/nbdev-export
	$(VENV)/bin/nbdev-clean
	$(PY) nbs/make_readme.py

bench: $(VENV)/.base-installed
	$(PY) benchmarks/bench_search.py

# certified bounds: the CB objective at the DARTS search configuration, and certified radii (run alone; long)
bench-bounds: $(VENV)/.base-installed
	$(PY) benchmarks/bench_bounds.py

# DSRNA: one search iteration of DSRNA-Jacobian/CB/Combined against second-order DARTS (run alone)
bench-dsrna: $(VENV)/.base-installed
	$(PY) benchmarks/bench_iteration.py --suite dsrna

# SANAS: one search iteration amortized over its update schedule against second-order DARTS (run alone)
bench-sanas: $(VENV)/.base-installed
	$(PY) benchmarks/bench_iteration.py --suite sanas

bench-text: $(VENV)/.base-installed
	$(PY) benchmarks/bench_iteration.py --suite text

# one LBG-NAS iteration (K = 2 expert supernets + the GAM) against second-order DARTS; results in benchmarks/results_lbg.md
bench-lbg: $(VENV)/.base-installed
	$(PY) benchmarks/bench_iteration.py --suite lbg

# one IUC-E search iteration against second-order DARTS on the same encoder supernet, and beam-3 captions per second; results in benchmarks/results_iuc.md
bench-iuc: $(VENV)/.base-installed
	$(PY) benchmarks/bench_iteration.py --suite iuc

# the neighbouring methods of seeds 003/004 (issue 18) against second-order DARTS (run alone)
bench-seeds: $(VENV)/.base-installed
	$(PY) benchmarks/bench_iteration.py --suite seeds

# seed 002's robustness dataset: NB-201 architectures trained and attacked per minute (run alone); benchmarks/results_robbench.md
bench-robbench: $(VENV)/.base-installed
	$(PY) benchmarks/bench_robbench.py

clean-outputs:
	rm -rf outputs/ci outputs/cpu outputs/paper outputs/REPORT.md
