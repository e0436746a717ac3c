# Set-up and the two top-level jobs. `make demo` and `make test` each do the whole set-up first:
# the Debian packages that are missing, a virtual environment in .venv, and the package with its
# pinned torch (constraints.txt) — the CPU-only build on a Linux machine without an NVIDIA driver
# when PyTorch's CPU index answers, and with a driver the CUDA build that driver and GPUs run
# (regspace/torch_index.py) — so a fresh clone needs nothing else.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA := /usr/share/datasets/fashion-mnist
DEMO := demo

.PHONY: setup system demo test clean-demo

setup: $(STAMP) system

$(STAMP): pyproject.toml constraints.txt regspace/torch_index.py
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "regspace needs Python >= 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --disable-pip-version-check -c constraints.txt $$($(PYTHON) regspace/torch_index.py) -e '.[dev]'
	touch $(STAMP)

# Debian packages: Fashion-MNIST (the default data), PostgreSQL (the queue's integration tests
# start a private server from its binaries) and Chromium (a test opens the report in it headless).
# Installed only when missing.
system:
	@missing=""; \
	[ -d $(DATA) ] || missing="$$missing dataset-fashion-mnist"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing$$missing"; \
	  ($$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null) \
	    || echo "warning: could not install$$missing (Fashion-MNIST is then downloaded; the PostgreSQL and report tests fail)"; \
	fi

# The main job: a small real study on Fashion-MNIST (experiments/demo.toml) — sample AnyNetX_A and
# RegNetX at a CPU-sized budget, train every model with the quick recipe in balanced rounds, compare
# their error EDFs → demo/edf.png, demo/curves.png, demo/report.html. Rerunning resumes.
demo: setup
	$(BIN)/regspace study run experiments/demo.toml

test: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest -q

clean-demo:
	rm -rf $(DEMO)
