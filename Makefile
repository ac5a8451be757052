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
# the Jupyter kernel every notebook names (metadata.kernelspec); registered inside the venv
KERNEL := brcd-kit
LAB_PORT ?= 8888

.PHONY: reproduce test test-fast lab nbstripout benchmarks install clean-cache help pretrain compare mutation

help:
	@sed -n '1,4p' Makefile

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[dev,lab,cluster]' $(TORCH_SPEC)
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "brcd-kit (.venv)"
	touch $(STAMP)

install: $(STAMP)

reproduce: $(STAMP)
	$(BIN)/python -m brcd_lib.reproduce --profile $(PROFILE)

# The profile's SimCLR stand-in backbones into brcd_lib/weights (resumable; committed weights
# that match the recipe are kept: FORCE=1 pretrains them again).
pretrain: $(STAMP)
	$(BIN)/python -m brcd_lib.pretrain --profile $(PROFILE) $(if $(FORCE),--force)

# Rerun the profile into $$BRCD_CACHE/rerun and compare it cell by cell with results/$(PROFILE).
compare: $(STAMP)
	$(BIN)/python -m brcd_lib.reproduce --profile $(PROFILE) --compare

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

benchmarks: $(STAMP)
	$(BIN)/python -m benchmarks.run

# Mutation testing of the modules that decide the kit's numbers (about an hour on 2 cores; not in
# CI): mutmut into mutants/, the report into results/benchmarks/mutation.md, exit 1 below target;
# then the compiled ranking kernel, which mutmut cannot mutate (results/benchmarks/mutation_kernel.md).
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[mutation]' $(TORCH_SPEC)
	$(BIN)/python -m benchmarks.mutation
	$(BIN)/python -m benchmarks.mutation_kernel

# JupyterLab on the repository root, opening START.md (links to every notebook, report and doc);
# Markdown opens rendered (.jupyter/lab-settings/overrides.json). The nbstripout git filter named
# in .gitattributes keeps notebook outputs out of commits; the post-save hook keeps a notebook
# whose save changed only what the filter strips out of `git status` (docs/lab.md).
lab: $(STAMP) nbstripout
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --port=$(LAB_PORT) \
	  --LabApp.app_settings_dir="$(CURDIR)/.jupyter/lab-settings" \
	  --FileContentsManager.post_save_hook=brcd_lib.provenance.lab_post_save \
	  --LabApp.default_url=/lab/tree/START.md $(if $(filter 0,$(shell id -u)),--allow-root)

# What the filter strips besides outputs and execution counts (nbstripout's own list adds widget
# state and per-cell execution times): the metadata a kernel, JupyterLab, VS Code or papermill
# writes when a notebook is merely opened, run or saved, so such a save leaves `git status` clean.
NBSTRIPOUT_EXTRA_KEYS := metadata.language_info metadata.papermill metadata.vscode \
  cell.metadata.jupyter cell.metadata.papermill cell.metadata.vscode

nbstripout: $(STAMP)
	git config filter.nbstripout.clean "'$(abspath $(BIN))/python' -m nbstripout --keep-id"
	git config filter.nbstripout.extrakeys "$(NBSTRIPOUT_EXTRA_KEYS)"
	git config filter.nbstripout.smudge cat
	git config diff.ipynb.textconv "'$(abspath $(BIN))/python' -m nbstripout --keep-id -t"

clean-cache:
	rm -rf .cache
