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

.PHONY: setup system demo test clean-demo

setup: $(STAMP) system

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "regspace needs Python >= 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Debian packages: Fashion-MNIST (the default data) and PostgreSQL (the queue's integration tests
# start a private server from its binaries). Installed only when missing.
system:
	@missing=""; \
	[ -d $(DATA) ] || missing="$$missing dataset-fashion-mnist"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing$$missing"; \
	  ($$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null) \
	    || echo "warning: could not install$$missing (Fashion-MNIST is then downloaded; the PostgreSQL tests fail)"; \
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
