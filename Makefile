# Two entry points (README's first lines): `make demo` sets up and runs the main job, `make test` the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data test lint demo bench clean

setup: $(VENV)/.installed data

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# Real Fashion-MNIST comes from Debian's dataset-fashion-mnist package; elsewhere point --data-dir at it.
data:
	@if [ ! -e $(FMNIST) ] && [ -z "$$SRTBENCH_DATA" ] && command -v apt-get >/dev/null; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist; fi

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

demo: setup
	$(BIN)/srtbench data info fashion-mnist
	$(BIN)/srtbench reproduce quick

bench: setup
	$(BIN)/python benchmarks/attacks.py

clean:
	rm -rf $(VENV) .pytest_cache
