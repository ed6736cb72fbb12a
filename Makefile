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

.PHONY: setup book test test-unit test-notebooks test-book bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH),$(BIN)/python -m pip install -q $(TORCH))
	$(BIN)/python -m pip install -q -r requirements.txt -e .
	touch $@

book: setup
	$(BIN)/jupyter-book build . $(JB_FLAGS)
	@echo
	@echo "The book is built. Open: file://$(abspath _build/html/index.html)"

test: test-unit test-notebooks test-book

test-unit: setup
	$(BIN)/python -m pytest tests

test-notebooks: setup
	MIXLIB_QUICK=1 $(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:python \
		--nbval-cell-timeout=600 notebooks

test-book: setup
	rm -rf _build/html
	$(BIN)/jupyter-book build . $(JB_FLAGS)

bench: setup
	$(BIN)/python -m mixlib.bench aggregate

clean:
	rm -rf _build
