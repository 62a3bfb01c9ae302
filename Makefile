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
	@echo "Django Channels workbook. Usage: make step-N run  (PORT=8001: another port; HOST=0.0.0.0: the room can join)"
	@echo
	@grep -hE '^[a-zA-Z%_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-16s %s\n", $$1, $$2}'

# uv.lock pins everything; `python -m workbook setup` runs `uv sync --locked` (bootstrapping uv with pip if needed).
$(BASE): uv.lock
	@test -n "$(PYTHON)" || { echo "make: no python3 found: install Python 3.10-3.15, then run make again"; exit 1; }
	@$(PYTHON) -m workbook setup$(if $(WHEELHOUSE), --wheelhouse "$(WHEELHOUSE)")

$(DEV): uv.lock
	@test -n "$(PYTHON)" || { echo "make: no python3 found: install Python 3.10-3.15, then run make again"; exit 1; }
	@$(PYTHON) -m workbook setup --dev$(if $(WHEELHOUSE), --wheelhouse "$(WHEELHOUSE)")

setup: $(DEV) ## create .venv with everything, from uv.lock (WHEELHOUSE=dir: offline, from make wheelhouse)

step-%:
	@$(if $(filter-out $@,$(MAKECMDGOALS)),:,$(MAKE) --no-print-directory run STEP=$*)

final:
	@$(if $(filter-out $@,$(MAKECMDGOALS)),:,$(MAKE) --no-print-directory run STEP=final)

list: $(BASE) ## list the steps
	@$(VPY) -m workbook list

run: $(BASE) ## run a step: make step-N run (or make run STEP=N); TRACE=1 prints every websocket event
	@test -n "$(STEP)" || { echo "make: which step? e.g. make step-4 run (make list shows them)"; exit 1; }
	@$(VPY) -m workbook run $(STEP)$(if $(filter-out 0,$(TRACE)), --trace)

diff: $(BASE) ## what a step changed: make step-N diff, or make diff A=2 B=4; HTML=1: a page for the projector
	@$(VPY) -m workbook diff $(if $(A),$(A) $(B),$(STEP))$(if $(filter-out 0,$(HTML)), --projector)

scope: $(BASE) ## print the scope a step's consumer sees: make step-3 scope
	@$(VPY) -m workbook scope $(STEP)

stop: $(BASE) ## stop workbook servers left running
	@$(VPY) -m workbook stop

test: $(DEV) ## run every test (real servers, notebooks, browser)
	@$(VPY) -m workbook test

.PHONY: lint
lint: $(DEV) ## check the code with ruff (workbook, tests, bench), as CI does
	@$(VPY) -m workbook lint

.PHONY: test-latest
test-latest: $(BASE) ## the stage, final and notebook tests on the newest releases (in .venv-latest/)
	@$(VPY) -m workbook test --latest

.PHONY: test-fast
test-fast: $(DEV) ## the tests without notebooks, browser, Redis or other Pythons (two to four minutes on two cores)
	@$(VPY) -m workbook test --fast

# --- notebooks ----------------------------------------------------------------
.PHONY: lab notebook notebooks-html
lab: $(DEV) ## open JupyterLab on notebooks/ with the .venv kernel (port 8888)
	@$(VPY) -m workbook lab

notebook: $(DEV) ## open a stage's notebook: make step-3 notebook
	@$(VPY) -m workbook notebook $(STEP)

notebooks-html: $(DEV) ## execute the notebooks into build/notebooks/*.html for offline reading
	@$(VPY) -m workbook notebooks-html

# --- browser ------------------------------------------------------------------
.PHONY: screenshots test-browser
screenshots: $(DEV) ## screenshot each chat page after a short conversation, into docs/
	@$(VPY) -m workbook screenshots

test-browser: $(DEV) ## run only the browser tests (needs Chromium)
	@$(VPY) -m workbook test tests/test_browser.py

# --- groups, redis, final, bench ----------------------------------------------

.PHONY: bench
bench: $(DEV) ## measure final/: 1000-client surge, echo rate, memory (writes docs/benchmarks.md)
	@$(VPY) -m workbook bench load --write --before $(BENCH_ARGS)

.PHONY: room
room: $(BASE) ## serve final/ on Redis to the whole room (LAN): prints the addresses, logins and a client to give out
	@$(VPY) -m workbook room $(or $(STEP),final)

.PHONY: redis
REDIS_PORT ?= 6379

redis: $(BASE) ## run a throwaway Redis for step 7 (REDIS_PORT=6380 to move it)
	@$(VPY) -m workbook redis --port $(REDIS_PORT)

# --- users --------------------------------------------------------------------
.PHONY: users
users: $(BASE) ## create step 9's demo users alice and bob (DEBUG only): make step-9 users
	@$(VPY) -m workbook users $(or $(STEP),9)

# --- pitfalls and doctor ------------------------------------------------------
.PHONY: doctor pitfall

doctor: $(BASE) ## diagnose: make doctor DIR=myproject | URL=ws://… | make step-5 doctor (none: the running server)
	@$(VPY) -m workbook doctor $(DIR) $(URL) $(STEP)

# The instructor's kit: the day-before check of a laptop, and the agendas page.
.PHONY: preflight agenda
preflight: ## is this laptop ready for the session? one line per check (send it to learners the day before)
	@test -n "$(PYTHON)" || { echo "make: no python3 found: install Python 3.10-3.15, then run make again"; exit 1; }
	@$(PYTHON) -m workbook preflight

agenda: $(BASE) ## regenerate docs/instructor.md's agendas and coaching notes (after steps.toml changes)
	@$(VPY) -m workbook agenda --write

pitfall: $(BASE) ## the pitfall lab: make pitfall lists them, make pitfall P=no-as-asgi runs one broken
	@$(VPY) -m workbook pitfall $(if $(P),run $(P),list)

# --- learner mode -------------------------------------------------------------
# Build a step yourself in workspace/: make step-4 start, edit, make check, make hint, make solution, make reset.
.PHONY: start check hint solution reset workspace
ifneq ($(filter workspace,$(MAKECMDGOALS)),)
STEP := workspace
endif

start: $(BASE) ## build step N yourself in workspace/: make step-N start (REPLACE=1 replaces, after a backup)
	@test -n "$(STEP)" || { echo "make: which step? e.g. make step-1 start (make list shows them)"; exit 1; }
	@$(VPY) -m workbook start $(STEP) $(if $(REPLACE),--replace)

check: $(BASE) ## check workspace/ against its step (or: make step-N check)
	@$(VPY) -m workbook check $(STEP)

hint: $(BASE) ## the next hint for the step in workspace/, one more each time
	@$(VPY) -m workbook hint

solution: $(BASE) ## the diff from workspace/ to the step's snapshot
	@$(VPY) -m workbook solution

reset: $(BASE) ## put workspace/ back to the start of its step (keeps a backup)
	@$(VPY) -m workbook reset

workspace: ## run your own project: make workspace run
	@$(if $(filter-out $@,$(MAKECMDGOALS)),:,$(MAKE) --no-print-directory run STEP=workspace)

clean: ## remove the virtualenv, logs and caches (learner-mode backups are kept)
	rm -rf $(VENV) .venv-latest .pytest_cache build
	find .workbook -mindepth 1 -maxdepth 1 ! -name backups -exec rm -rf {} + 2>/dev/null || true
	find steps final tests workbook -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
	find steps final -name db.sqlite3 -delete 2>/dev/null || true

# --- offline class -------------------------------------------------------------
.PHONY: wheelhouse
wheelhouse: $(BASE) ## every file uv.lock needs on Linux, macOS, Windows: WHEELHOUSE=dir (build/wheelhouse), ARCHIVE=1
	@$(VPY) -m workbook wheelhouse $(WHEELHOUSE)$(if $(ARCHIVE), --archive)
