# Set-up and the two top-level jobs. `make demo` and `make test` each do the whole set-up first:
# the Fashion-MNIST Debian package (when missing), a virtual environment in .venv, and the package
# with its pinned CPU torch (constraints.txt) — so a fresh clone needs nothing else.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA := /usr/share/datasets/fashion-mnist
DEMO := demo

.PHONY: setup data demo test clean-demo

setup: $(STAMP) data

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "regspace needs Python >= 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

data:
	@if [ ! -d $(DATA) ]; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	    || echo "warning: could not install dataset-fashion-mnist; regspace will download Fashion-MNIST instead"; \
	fi

# The main job: a small real sweep on Fashion-MNIST — sample two design spaces (AnyNetX_A and
# RegNetX) at a CPU-sized budget, train every model with the quick recipe, compare their error EDFs.
# Rerunning resumes: --total keeps the sample fixed and `train` only trains what has no result.
demo: setup
	$(BIN)/regspace sample --store $(DEMO)/store --space X_a --total 10 --preset mnist --flops 2M:4M --seed 0
	$(BIN)/regspace sample --store $(DEMO)/store --space RegNetX --total 10 --preset mnist --flops 2M:4M --seed 0
	$(BIN)/regspace train --store $(DEMO)/store
	$(BIN)/regspace compare --store $(DEMO)/store
	$(BIN)/regspace plot-edf --store $(DEMO)/store --band -o $(DEMO)/edf.png
	$(BIN)/regspace report --store $(DEMO)/store -o $(DEMO)/report.html

test: setup
	$(BIN)/pytest -q

clean-demo:
	rm -rf $(DEMO)
