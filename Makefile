# `make demo` segments the bundled samples with the bundled model (the light install: inference only, no PyTorch);
# `make test` sets up what the tests need (scripts/setup_tests.sh) and runs the linter and the test suite (the full
# install: the same .venv extended with PyTorch and the dev extras); `make test-fast` runs the linter and the tests that
# are neither slow nor need ../shared/data (docs/development.md, "Test lanes"); `make web` sets up the webcam page
# (web/) and serves it on http://localhost:8000/.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LIGHT := $(VENV)/.installed-light
FULL := $(VENV)/.installed-full

.PHONY: demo test test-fast test-setup lint bench onnx web web-setup web-bench wheel clean

$(LIGHT): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(LIGHT)

$(FULL): $(LIGHT)
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(FULL)

demo: $(LIGHT)
	$(BIN)/asbunet segment samples/images --output out/demo --save mask,overlay,effect --background blur

test: $(FULL) test-setup
	$(BIN)/ruff check src tests web experiments benchmarks
	$(BIN)/pytest

test-setup: $(FULL)
	bash scripts/setup_tests.sh

test-fast: $(FULL)
	$(BIN)/ruff check src tests web experiments benchmarks
	$(BIN)/pytest -m "not slow and not data"

lint: $(FULL)
	$(BIN)/ruff check src tests web experiments benchmarks
	$(BIN)/ruff format --check src tests web experiments benchmarks

# The bundled models' ONNX files (fp32 and int8) from their safetensors weights; run after replacing the weights.
onnx: $(FULL)
	$(BIN)/asbunet export --bundled

bench: $(FULL)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/asbunet bench --output out/bench --calibration ../shared/data/pfcn_portrait/train/images ../shared/data/ccp/train/images

# The webcam page: npm packages (node and npm needed), runtime files and models beside web/index.html, then served
# with the cross-origin isolation headers that WebAssembly threads need. PORT=8080 serves on another port.
PORT ?= 8000
web: $(FULL)
	$(BIN)/python web/serve.py --port $(PORT)

web-setup: $(FULL)
	$(BIN)/python web/serve.py --setup-only

# Frames per second of the page in headless Chromium, per bundled model and for MediaPipe's web package.
web-bench: $(FULL)
	$(BIN)/python web/bench.py

# A wheel with both bundled models in dist/.
wheel: $(FULL)
	$(BIN)/python -m build --wheel --no-isolation --outdir dist

clean:
	rm -rf $(VENV) out web/node_modules web/vendor web/models
