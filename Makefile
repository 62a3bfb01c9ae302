# Thin wrapper: every recipe hands off to `python -m workbook …`, which also works without make.
# `make step-4 run` reads the step from the goal list; `make run STEP=4` does the same.

.DEFAULT_GOAL := help
SHELL := /bin/sh

PYTHON ?= $(shell command -v python3 2>/dev/null || command -v python 2>/dev/null)
PORT ?= 8000
HOST ?= 127.0.0.1
VENV := .venv
VPY := $(VENV)/bin/python
BASE := $(VENV)/.installed-base
DEV := $(VENV)/.installed-dev
export PORT HOST

# `make step-4 run`, `make step-4 diff`, `make final run`: the step comes from the goal list.
STEP_GOAL := $(firstword $(filter step-% final,$(MAKECMDGOALS)))
ifneq ($(STEP_GOAL),)
STEP := $(patsubst step-%,%,$(STEP_GOAL))
endif

.PHONY: help list run diff scope test stop clean setup final

help: ## show this help
	@echo "Django Channels workbook. Usage: make step-N run  (PORT=8001 HOST=0.0.0.0 to change where)"
	@echo
	@grep -hE '^[a-zA-Z%_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-16s %s\n", $$1, $$2}'

$(BASE): requirements/base.lock
	@test -n "$(PYTHON)" || { echo "make: no python3 found: install Python 3.10-3.13, then run make again"; exit 1; }
	@$(PYTHON) -m workbook setup

$(DEV): requirements/dev.lock requirements/base.lock
	@test -n "$(PYTHON)" || { echo "make: no python3 found: install Python 3.10-3.13, then run make again"; exit 1; }
	@$(PYTHON) -m workbook setup --dev

setup: $(DEV) ## create .venv with everything, from the pinned locks

step-%:
	@$(if $(filter-out $@,$(MAKECMDGOALS)),:,$(MAKE) --no-print-directory run STEP=$*)

final:
	@$(if $(filter-out $@,$(MAKECMDGOALS)),:,$(MAKE) --no-print-directory run STEP=final)

list: $(BASE) ## list the steps
	@$(VPY) -m workbook list

run: $(BASE) ## run a step: make step-N run (or make run STEP=N)
	@test -n "$(STEP)" || { echo "make: which step? e.g. make step-4 run (make list shows them)"; exit 1; }
	@$(VPY) -m workbook run $(STEP) --port $(PORT) --host $(HOST)

diff: $(BASE) ## what a step changed: make step-N diff, or make diff A=2 B=4
	@$(VPY) -m workbook diff $(if $(A),$(A) $(B),$(STEP))

scope: $(BASE) ## print the scope a step's consumer sees: make step-3 scope
	@$(VPY) -m workbook scope $(STEP)

stop: $(BASE) ## stop workbook servers left running
	@$(VPY) -m workbook stop

test: $(DEV) ## run every test (real servers, notebooks, browser)
	@$(VPY) -m workbook test

# --- notebooks (issue 3) ------------------------------------------------------

# --- browser (issue 4) --------------------------------------------------------

# --- groups, redis, final, bench (issue 5) ------------------------------------

# --- pitfalls and doctor (issue 6) --------------------------------------------

# --- learner mode (issue 7) ---------------------------------------------------

clean: ## remove the virtualenv, logs and caches
	rm -rf $(VENV) .workbook .pytest_cache
	find steps final tests workbook -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
	find steps final -name db.sqlite3 -delete 2>/dev/null || true
