# Two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint accuracy speed onnx compilers docs wheel wheel-check gpu gpu-check clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned to the CPU build that the machine carries; a plain `torch` pulls CUDA.
	# triton: the GPU kernels, tested without a GPU (its interpreter, its ahead-of-time compiler)
	$(PY) -m pip install -q "torch==2.13.0" "triton==3.9.0" jax optax
	# the frameworks kaun adapts to, which the tests run (Keras on the JAX and torch backends)
	$(PY) -m pip install -q -e ".[test,plot,keras,flax,equinox,onnx]" mypy ruff
	# kaun's compiled kernels into their cache, ahead of first use (without a C compiler the
	# formulas serve every array, and this line says so)
	$(PY) -m kaun.cli build || echo "kaun: no compiled kernels; the formulas serve"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m kaun.demo

test: $(STAMP)
	$(PY) -m pytest -q
	$(MAKE) lint

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples tools docs/build.py setup.py
	$(VENV)/bin/mypy

# every GPU (Triton) kernel compiled ahead of time for sm_80 and sm_90, without a GPU, and its
# PTX checked for approximate or flush-to-zero arithmetic (tests/test_gpu.py takes a sample)
gpu-check: $(STAMP)
	TRITON_CACHE_DIR=$${TRITON_CACHE_DIR:-$(VENV)/triton-cache} $(PY) -m kaun.cli build --gpu sm_80,sm_90

# on a GPU machine: bits against the CPU kernels, speed and memory against torch -> docs/gpu.md
gpu: $(STAMP)
	$(PY) benchmarks/gpu.py

docs: $(STAMP)
	$(PY) docs/build.py

accuracy: $(STAMP)
	$(PY) benchmarks/accuracy.py

speed: $(STAMP)
	$(PY) benchmarks/speed.py

onnx: $(STAMP)
	$(PY) benchmarks/onnx_export.py

compilers: $(STAMP)
	$(PY) -m pip install -q numba
	$(PY) benchmarks/compilers.py

# the sdist and a wheel that carries prebuilt kernels for every x86-64 level (or aarch64's), in dist/
wheel: $(STAMP)
	KAUN_PREBUILT=all $(PY) -m build --no-isolation --outdir dist .

# that wheel installed into a fresh venv: prebuilt, compiled and formula paths timed (docs/install.md)
wheel-check: $(STAMP)
	$(PY) benchmarks/wheel_check.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
