# One entry point: `make train` (main job) and `make test` (test suite) work on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install train test test-slow mediapipe-venv clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(BIN)/python train.py

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# MediaPipe replaces headless OpenCV with its GUI build, so it lives in its own venv (not .venv).
# Run the cross-topology baseline with
#   .venv-mediapipe/bin/python -m hrnet_train.baselines.mediapipe data=coco_mini
# and its tests with `.venv-mediapipe/bin/pytest -m mediapipe`.
MP_VENV := .venv-mediapipe

mediapipe-venv: pyproject.toml
	$(PY) -m venv $(MP_VENV)
	$(MP_VENV)/bin/pip install -q --upgrade pip
	$(MP_VENV)/bin/pip install -q -e . "pytest>=8,<10" "pytest-timeout>=2.2"
	$(MP_VENV)/bin/pip install -q "mediapipe>=1.2,<2"

clean:
	rm -rf $(VENV) $(MP_VENV) outputs multirun
