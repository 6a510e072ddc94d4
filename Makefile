# hsicodec — set-up, demo, tests and benchmarks. Everything runs in .venv.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test lint format install native cuda bench bench-rd bench-decode bench-scale readme-results vectors clean

$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.cpp csrc/*.h csrc/*.inl)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[train,dev]'
	@touch $(STAMP)

install: $(STAMP)

# Rebuild the C++ extension in place (after editing csrc/).
native: $(STAMP)
	$(BIN)/python -m pip install -q --no-deps -e .

# Also build the optional CUDA kernel hsicodec._native_cuda (needs nvcc; HSICODEC_CUDA_ARCH: -gencode flags).
cuda: $(STAMP)
	HSICODEC_CUDA=1 $(BIN)/python -m pip install -q --no-deps -e .

demo: $(STAMP)
	$(BIN)/python tools/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# ruff (pyflakes, pycodestyle, bugbear, pyupgrade, isort; and the formatter) and mypy, as configured in pyproject.toml
lint: $(STAMP)
	$(BIN)/ruff check hsicodec tools tests
	$(BIN)/ruff format --check hsicodec tools tests
	$(BIN)/mypy

# apply ruff's fixes and formatting
format: $(STAMP)
	$(BIN)/ruff check --fix hsicodec tools tests
	$(BIN)/ruff format hsicodec tools tests

# The whole RD suite (every scene of ../shared/data/hsi; 33 min wall / 17 min CPU when measured on 2
# cores shared with other jobs, before effort max was timed once instead of 3x): the atlas-hsi
# probe, bench/rd.json, bench/rd.md, bench/rd_<scene>.png, then the README results section.
# The paper's per-scene INR baselines run on the validation scenes (PCA-DCT and JPEG everywhere);
# BENCH_RD_ARGS="" leaves the INR fits out.
BENCH_RD_ARGS ?= --baselines inr_fp32 inr_fp16 inr_sampling
bench-rd: $(STAMP)
	$(BIN)/python tools/bench_atlas.py
	$(BIN)/python tools/bench_rd.py $(BENCH_RD_ARGS)
	$(BIN)/python tools/update_readme.py

bench-decode: $(STAMP)
	$(BIN)/python tools/bench_decode.py

# Scale benchmark (issue #19 point 5): 1024^2x189, 2048^2x224 and 145^2x220 scenes of real spectra,
# hsicodec against PCA + JPEG 2000, PCA + HTJ2K and a tiled DEFLATE GeoTIFF, each step in its own
# process; writes bench/scale.json and bench/scale.md (targets met / not met). Estimated 60-100 min on
# 2 shared cores (2048^2 scene: ~80 % of it), ~6 GB peak RSS, ~4 GB in $TMPDIR/hsicodec-bench-scale.
# BENCH_SCALE_ARGS=--quick: small sizes, bench/scale_quick.{json,md}, ~6 min.
BENCH_SCALE_ARGS ?=
bench-scale: $(STAMP)
	$(BIN)/python tools/bench_scale.py $(BENCH_SCALE_ARGS)

readme-results: $(STAMP)
	$(BIN)/python tools/update_readme.py

bench: bench-rd bench-decode readme-results

vectors: $(STAMP)
	$(BIN)/python tools/make_vectors.py

clean:
	rm -rf build *.egg-info hsicodec/_native*.so .pytest_cache
