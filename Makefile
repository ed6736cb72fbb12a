# The two commands of the README: `make book` and `make test`. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# The torch this machine holds on disk; `make TORCH= ...` keeps whatever torch is installed.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
# The data: ../shared/data beside the checkout when it is there (else mixlib downloads).
SHARED_DATA := $(wildcard $(abspath ..)/shared/data)
export MIXLIB_DATA ?= $(SHARED_DATA)
JB_FLAGS := -W -n --keep-going

# MathJax is served from the site itself (offline readers, the browser test): the npm package,
# its es5 build copied into _site_static/mathjax (git-ignored), copied into the site's _static/.
MATHJAX_VERSION := 3.2.2
MATHJAX := _site_static/mathjax/tex-mml-chtml.js
MATHJAX_PARTS := tex-mml-chtml.js input output ui a11y sre adaptors

.PHONY: setup book test test-unit test-notebooks test-book test-browser bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH),$(BIN)/python -m pip install -q $(TORCH))
	$(BIN)/python -m pip install -q -r requirements.txt -e .
	touch $@

$(MATHJAX):
	command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq npm)
	rm -rf .mathjax-npm _site_static/.mathjax.tmp && mkdir -p .mathjax-npm _site_static/.mathjax.tmp
	npm install --prefix .mathjax-npm --no-audit --no-fund --silent mathjax@$(MATHJAX_VERSION)
	for part in $(MATHJAX_PARTS); do \
		cp -r .mathjax-npm/node_modules/mathjax/es5/$$part _site_static/.mathjax.tmp/ || exit 1; done
	rm -rf _site_static/mathjax .mathjax-npm && mv _site_static/.mathjax.tmp _site_static/mathjax

book: setup $(MATHJAX)
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo
	@echo "The book is built. Open: file://$(abspath _build/html/index.html)"

test: test-unit test-notebooks test-book test-browser

test-unit: setup
	$(BIN)/python -m pytest tests

test-notebooks: setup
	MIXLIB_QUICK=1 $(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:python \
		--nbval-cell-timeout=600 notebooks

test-book: setup $(MATHJAX)
	rm -rf _build/html
	$(BIN)/jupyter-book build . $(JB_FLAGS)

# Headless Debian chromium opens the built site from a local HTTP server; screenshots land in
# _build/screenshots. Installs chromium with apt where it is missing.
test-browser: setup test-book
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	MIXLIB_BROWSER_TEST=1 $(BIN)/python -m pytest tests/test_site.py

bench: setup
	$(BIN)/python -m mixlib.bench aggregate

clean:
	rm -rf _build _site_static/mathjax
