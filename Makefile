# Two entry points (README's first lines): `make demo` sets up and runs the main job, `make test` the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data browser test lint demo bench reproduction models site clean

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

# The site's tests drive Debian's Chromium (tests/test_site.py; playwright comes with the dev extra, no download).
browser:
	@if ! command -v chromium >/dev/null && [ -z "$$SRTBENCH_CHROMIUM" ] && command -v apt-get >/dev/null; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; fi

# one pytest-xdist worker per core (tests/conftest.py gives each its share of torch's threads); tests that share an
# expensive fixture or an embedded Ray run on one worker (xdist_group)
test: setup browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n auto --dist loadgroup

demo: setup  # ~2 minutes: trains standard, attacks it beside models/fmnist-{at,srt-pixel}.pt
	$(BIN)/srtbench data info fashion-mnist
	$(BIN)/srtbench reproduce quick

# Speed claims, each a ratio measured in one run (README, Performance); the last line times the whole battery on
# the robust model (per-attack wall times and the total; BENCH_N=1000 for issue 15's target, on an idle machine).
BENCH_N ?= 200
bench: setup
	$(BIN)/python benchmarks/attacks.py
	$(BIN)/python benchmarks/pointwise.py
	$(BIN)/python benchmarks/layout.py
	$(BIN)/srtbench evaluate models/fmnist-srt-pixel.pt --attacks all --n $(BENCH_N) --force \
	  --out $(or $(TMPDIR),/tmp)/srtbench-bench.csv

# The whole cpu-scale reproduction of REPRODUCTION.md (hours on 2 cores; each recipe resumes where it stopped):
# equal SGD steps for every defense, the default; `make reproduction PROTOCOL=epochs` for the equal-epoch tables.
EXPERIMENTS := table4 table3 figure7 table6 table5 figure3 table9 table8 figure2 figure1 table2 table1
PROTOCOL ?= steps
reproduction: setup
	for e in $(EXPERIMENTS); do $(BIN)/srtbench reproduce $$e --scale cpu --protocol $(PROTOCOL) || exit 1; done

# The reference checkpoints: copies of the reproduction's runs (`srtbench reproduce table4 table3 --scale cpu`),
# each evaluated on the first 500 test images with PGD-40 at ε 0.1; tests/test_reproduction.py re-evaluates them
# against models/reference.csv; models/readme_table.py prints models/README.md's table.
REFERENCE := standard:fmnist-pixel-cpu/standard at:fmnist-pixel-cpu/at srt-pixel:fmnist-pixel-cpu/srt-lam1 \
             srt-spatial:fmnist-spatial-cpu/srt-lam0.2 srt-plus:fmnist-compound-cpu/srt-compound
models: setup
	for pair in $(REFERENCE); do cp runs/$${pair#*:}.pt models/fmnist-$${pair%%:*}.pt; done
	$(BIN)/srtbench evaluate $(foreach pair,$(REFERENCE),models/fmnist-$(firstword $(subst :, ,$(pair))).pt) \
	  --attacks 'pgd[epsilon=0.1,step_size=0.005]' --n 500 --force --out models/reference.csv
	$(BIN)/python models/readme_table.py

# The results as a static site: leaderboards, a page per model, the paper's tables (open site/index.html from disk).
site: setup
	$(BIN)/srtbench report results/ --out site/

clean:
	rm -rf $(VENV) .pytest_cache
