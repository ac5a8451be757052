# brcd-kit. Two commands on a fresh machine:
#   make reproduce   # every notebook on the default profile (digits), offline, into results/
#   make test        # the whole test suite (unit tests + every notebook on the smoke profile)
PYTHON  ?= python3.11
VENV    ?= .venv
PROFILE ?= digits
# torch/torchvision are pinned so that no other requirement pulls a different build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
BIN := $(VENV)/bin
STAMP := $(VENV)/.brcd-installed

.PHONY: reproduce test test-fast lab benchmarks install clean-cache help

help:
	@sed -n '1,4p' Makefile

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[dev,lab]' $(TORCH_SPEC)
	touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	$(BIN)/python -m brcd_lib.reproduce --profile $(PROFILE)

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

benchmarks: $(STAMP)
	$(BIN)/python -m benchmarks.run

lab: $(STAMP)
	$(BIN)/python -m ipykernel install --sys-prefix --name brcd-kit --display-name "brcd-kit (.venv)"
	$(BIN)/jupyter lab notebooks/

clean-cache:
	rm -rf .cache
