# `make demo` segments the bundled samples with the bundled model; `make test` runs the linter and the test suite;
# `make web` sets up the webcam page (web/) and serves it on http://localhost:8000/.
# Each creates or updates the virtual environment in .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench onnx web web-setup web-bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/asbunet segment samples/images --output out/demo --save mask,overlay,effect --background blur

test: $(STAMP)
	$(BIN)/ruff check src tests web
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/ruff check src tests web
	$(BIN)/pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests web
	$(BIN)/ruff format --check src tests web

# The bundled models' ONNX files (fp32 and int8) from their safetensors weights; run after replacing the weights.
onnx: $(STAMP)
	$(BIN)/asbunet export-bundled

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/asbunet bench --output out/bench --calibration ../shared/data/pfcn_portrait/train/images ../shared/data/ccp/train/images

# The webcam page: npm packages (node and npm needed), runtime files and models beside web/index.html, then served
# with the cross-origin isolation headers that WebAssembly threads need. PORT=8080 serves on another port.
PORT ?= 8000
web: $(STAMP)
	$(BIN)/python web/serve.py --port $(PORT)

web-setup: $(STAMP)
	$(BIN)/python web/serve.py --setup-only

# Frames per second of the page in headless Chromium, per bundled model and for MediaPipe's web package.
web-bench: $(STAMP)
	$(BIN)/python web/bench.py

clean:
	rm -rf $(VENV) out web/node_modules web/vendor web/models
