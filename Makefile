# `make demo` and `make test` create .venv and install what they need on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.datakit-installed
DEMO_DIR ?= demo_out

.PHONY: demo test test-all test-lowest bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# pinned first: these wheels are on this machine's disk; an open range would fetch a CUDA build
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m datakit.demo --output $(DEMO_DIR)

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

# the suite on the LOWEST versions pyproject.toml admits (torch excepted: one build is installable)
LOWEST_VENV ?= /tmp/datakit-lowest
LOWEST := numpy==1.26.4 pandas==2.2.0 pyarrow==14.0.2 pillow==11.0.0 opencv-python-headless==4.11.0.86 \
	typer==0.20.0 rich==13.7.1 pyyaml==6.0.1 scikit-learn==1.3.2 pycocotools==2.0.7 albumentations==2.0.8 \
	matplotlib==3.7.5 optuna==4.9.0 pytest==7.4.4 hypothesis==6.100.0 psycopg[binary]==3.1.18
test-lowest:
	test -x $(LOWEST_VENV)/bin/python || $(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1 $(LOWEST)
	PYTHONPATH=$(CURDIR) $(LOWEST_VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/ingest.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
