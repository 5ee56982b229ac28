# `make demo` segments the bundled samples with the bundled model; `make test` runs the linter and the test suite.
# Both create or update the virtual environment in .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench onnx clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/asbunet segment samples/images --output out/demo --save mask,overlay,effect --background blur

test: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

# The bundled models' ONNX files (fp32 and int8) from their safetensors weights; run after replacing the weights.
onnx: $(STAMP)
	$(BIN)/asbunet export-bundled

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/asbunet bench --output out/bench --calibration ../shared/data/pfcn_portrait/train/images ../shared/data/ccp/train/images

clean:
	rm -rf $(VENV) out
