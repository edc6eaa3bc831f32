# make demo   — create .venv, install honing with pinned versions, train on a bundled dataset
# make test   — create .venv, install, start a throwaway PostgreSQL (scripts/postgres.sh), find headless
#               Chromium for the report's browser test (scripts/chromium.sh), run every test
# Both start from nothing: only python3 (3.11+) is needed (make test adds PostgreSQL and Chromium with
# apt-get if it can).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= dev,text,rl
# the stamp changes with the dependencies and the extras, so a new extra is installed into an existing .venv
STAMP  := $(VENV)/.installed-$(shell (cat pyproject.toml constraints.txt; echo "$(EXTRAS)") | cksum | cut -d' ' -f1)

.PHONY: demo test install docs lock bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/honing quickstart --out runs/quickstart-demo

# The PostgreSQL tests use $HONING_TEST_POSTGRES when set, else the server scripts/postgres.sh starts
# (installed from Debian if missing); the browser test (tests/report/test_browser.py) uses
# $HONING_TEST_CHROMIUM when set, else the Chromium scripts/chromium.sh installs from Debian. Either
# missing: those tests skip, or fail when CI is set.
test: $(STAMP)
	HONING_TEST_POSTGRES="$${HONING_TEST_POSTGRES:-$$(bash scripts/postgres.sh)}" \
	HONING_TEST_CHROMIUM="$${HONING_TEST_CHROMIUM:-$$(bash scripts/chromium.sh)}" \
	$(BIN)/python -m pytest -n 2 -q

docs: $(STAMP)
	$(BIN)/python -c "from honing.recipe import reference_markdown as r; open('docs/recipe.md','w').write(r())"
	COLUMNS=100 $(BIN)/python -c "from honing.cli import reference_markdown as r; open('docs/cli.md','w').write(r())"
	$(BIN)/python -c "import re; from honing.tuning.defaults import markdown as m; p='docs/tuning.md'; t=open(p).read(); open(p,'w').write(re.sub(r'(checks this table -->\n).*?(\n<!-- end of default spaces -->)', lambda x: x[1] + m() + x[2], t, flags=re.S))"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_tabular.py
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/checkpointing_memory.py
	$(BIN)/python benchmarks/tuning_efficiency.py
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/finetune_modes.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/serving_profile.py
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/image_stream.py

# Re-pin every dependency (core, extras, dev) after changing pyproject.toml.
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet "torch==2.13.0" -e ".[all]"
	{ echo "# Pinned versions of every dependency (core, extras and dev), installed together and tested."; \
	  echo "# Regenerate with: make lock.   torch is the CPU build (pip finds torch-2.13.0+cpu locally)."; \
	  .lockenv/bin/pip freeze --exclude-editable | grep -v '^honing' | sed 's/+cpu$$//'; } > constraints.txt
	rm -rf .lockenv

clean:
	rm -rf $(VENV) runs mlruns.db .pytest_cache
