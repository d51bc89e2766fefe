# Two commands matter: `make lab` (start the course) and `make test` (run every test).
# Both create or refresh the virtual environment in .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# JupyterLab refuses to run as root without this flag.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: venv lab test bench mutants notebooks book clean playground

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lab: venv
	$(BIN)/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 --ServerApp.open_browser=False $(ROOT_FLAG)

# The playground (sinusoid and Omniglot tabs) as a standalone page: Voilà on 127.0.0.1
# with a fresh token (PORT=8866 by default). Open the printed address.
PORT  ?= 8866
ifndef TOKEN
TOKEN := $(shell $(PYTHON) -c 'import secrets; print(secrets.token_hex(16))')
endif
playground: venv
	@echo "minimaml playground: http://127.0.0.1:$(PORT)/?token=$(TOKEN)"
	$(BIN)/voila app/playground.ipynb --no-browser --Voila.ip=127.0.0.1 --port=$(PORT) --token=$(TOKEN)

test: venv
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python benchmarks/run_all.py

# Mutation testing (cosmic-ray): a seeded sample of mutants of minimaml/ against the fast
# tests, in a copy under runs/mutants (the working tree is not touched); writes
# runs/mutants/report.md. See TESTING.md. MUTANTS_ARGS="--budget-minutes 120 --sample core=200".
MUTANTS_ARGS ?=
mutants: venv
	$(BIN)/python scripts/mutants.py $(MUTANTS_ARGS)

# Rebuild the course notebooks from notebooks/src/ and run them at full size (slow).
notebooks: venv
	$(BIN)/python scripts/build_notebooks.py --execute

# The course website from the committed notebooks as they are (nothing runs): book/_build/html.
book: venv
	$(BIN)/python scripts/build_book.py

clean:
	rm -rf $(VENV) runs .pytest_cache book/_build
