"""Every runtime's flags, environment variables and probe paths, checked by the runtime itself at
the release its image is pinned to (issue 28, item 5): what the builders emit for every spec a
user can write must be taken by the server the pod runs, or the first pod on EKS is the test.

- vLLM and SGLang: their own argument parsers (vLLM's `vllm serve` parser, SGLang's
  `prepare_server_args`), imported from the pinned packages `make runtime-parsers` installs
  (requirements/runtimes/*.txt), in a subprocess (runtime_parsers.py beside this file).
- llama.cpp: llama-server's argument definitions (common/arg.cpp: the options offered to the
  server example, their value or not, their environment variables) and routes, from the llama.cpp
  that llama-cpp-python's source release vendors at the locked version (the llamacpp image's).
- TGI: the launcher's definition at its last release (contracts/tgi.json: clap's `struct Args`,
  the value enums, the environment variables its launcher, router and server read, the router's
  paths), extracted from the release's source with the commit named in the file.

An unknown or misspelt flag, a value the runtime refuses, an environment variable the runtime
never reads, or a probe path it does not serve fails with the runtime's own message.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from slam.api.modeldeployment import RUNTIME_QUANTIZATIONS, ModelDeploymentSpec, Quantization
from slam_operator.modeldeployment import builders
from slam_operator.runtimes import llamacpp, sglang, tgi, vllm
from tests.controlplane.cluster import REPO
from tests.operator.modeldeployment.test_builders import SPECS

pytestmark = pytest.mark.slow

CONTRACTS = Path(__file__).parent / "contracts"
RUNTIMES = REPO / "requirements" / "runtimes"
CACHE = Path(os.environ.get("SLAM_CACHE", Path.home() / ".cache" / "slam")) / "runtime-parsers"
QUANTIZATIONS = list(Quantization.__args__)


def parser_dir(name: str) -> Path:
    req = RUNTIMES / f"{name}.txt"
    path = CACHE / f"{name}-{hashlib.sha256(req.read_bytes()).hexdigest()[:12]}"
    if not (path / ".installed").exists():
        pytest.fail(f"{path} is missing: run `make runtime-parsers`")
    return path


def pinned(name: str) -> str:
    """The version requirements/runtimes/NAME.txt pins for the runtime's own package."""
    for line in (RUNTIMES / f"{name}.txt").read_text().splitlines():
        if line.startswith(f"{name}=="):
            return line.split("==", 1)[1]
    raise AssertionError(f"requirements/runtimes/{name}.txt pins no {name}")


def llama_cpp_python_version() -> str:
    lock = (REPO / "requirements" / "lock.txt").read_text()
    return re.search(r"^llama-cpp-python==(\S+)", lock, re.M).group(1)


# --- what the builders emit, for every kind of spec -------------------------------------------


def allowed_quantizations(runtime: str) -> list[str]:
    """What the API lets a spec of this runtime ask for (its CEL rules)."""
    return list(RUNTIME_QUANTIZATIONS.get(runtime, QUANTIZATIONS))


def _specs(runtime: str) -> dict[str, dict]:
    """The golden specs of this runtime, and variants that reach every branch of its builder:
    every quantization the API allows it, several GPUs (tensor parallelism), the limits."""
    base = {name: spec for name, spec in SPECS.items() if name.split("-")[0] == runtime}
    if runtime == "llamacpp":
        return base
    out = dict(base)
    gpu = next(s for name, s in base.items() if name == runtime)
    for q in allowed_quantizations(runtime):
        out[f"{runtime}-{q}"] = {**gpu, "quantization": q}
    out[f"{runtime}-4-gpus-all-limits"] = {
        **gpu, "gpus": 4, "maxInputTokens": 1024, "maxTotalTokens": 8192,
        "maxConcurrentSequences": 64}
    return out


def container(spec: dict) -> dict:
    s = ModelDeploymentSpec.model_validate(spec)
    t = builders.ServedModel("m", "models", s, "a" * 40, "https://huggingface.co",
                             kv_cache_gib=4 if s.on_cpu else None)
    deployment = next(c for c in builders.build_children(t) if c["kind"] == "Deployment")
    return deployment["spec"]["template"]["spec"]["containers"][0]


def probe_paths(c: dict) -> set[str]:
    return {c[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")
            if p in c}


def env_names(c: dict) -> set[str]:
    return {e["name"] for e in c.get("env", [])}


def misspelt(args: list[str]) -> list[str]:
    return ["--prot" if a == "--port" else a for a in args]


@functools.cache
def hub_env() -> frozenset[str]:
    """What huggingface_hub (vLLM's, SGLang's and TGI's server's downloader) reads."""
    import huggingface_hub

    root = Path(huggingface_hub.__file__).parent
    text = (root / "constants.py").read_text() + (root / "utils" / "_auth.py").read_text()
    return frozenset(re.findall(r'"((?:HF|HUGGINGFACE)_[A-Z_]+)"', text))


# --- vLLM and SGLang: their own parsers ---------------------------------------------------------


@functools.cache
def run_parser(runtime: str, arg_lists: tuple[tuple[str, ...], ...]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "tests.operator.modeldeployment.runtime_parsers", runtime],
        input=json.dumps([list(a) for a in arg_lists]), capture_output=True, text=True,
        timeout=600, cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(parser_dir(runtime))])})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("runtime", ["vllm", "sglang"])
def test_the_runtime_parser_takes_every_builders_arguments(runtime: str) -> None:
    specs = _specs(runtime)
    containers = {name: container(spec) for name, spec in specs.items()}
    lists = tuple(tuple(c["args"]) for c in containers.values())
    # The quantizations the API refuses this runtime: the runtime refuses them too (the rules
    # are not stricter than the runtime).
    golden = list(containers[runtime]["args"])
    refused_by_api = [q for q in QUANTIZATIONS if q not in allowed_quantizations(runtime)]
    api_refusals = tuple(tuple([*golden, "--quantization", q]) for q in refused_by_api)
    # One misspelt flag, to show the check can fail and how it says so.
    probe = tuple(misspelt(golden))
    got = run_parser(runtime, (*lists, *api_refusals, probe))
    results = got["results"]
    refused = {name: msg for name, msg in zip(containers, results, strict=False) if msg}
    assert not refused, refused
    for q, msg in zip(refused_by_api, results[len(lists):-1], strict=True):
        assert msg and "--quantization" in msg, f"{runtime} takes quantization {q}: allow it"
    assert "--prot" in results[-1], results[-1]
    assert "unrecognized arguments" in results[-1]
    known = set(got["env"]) | hub_env()
    for name, c in containers.items():
        assert env_names(c) <= known, (name, env_names(c) - known)
        for path in probe_paths(c):
            assert any(f'"{path}"' in f.read_text(errors="replace")
                       for root in map(Path, got["sources"]) for f in root.rglob("*.py")), \
                f"{runtime} {pinned(runtime)} serves no {path} ({name}'s probes)"


def test_the_vllm_cpu_variant_is_checked_too() -> None:
    """spec.gpus 0: the CPU backend's server is the same `vllm serve` parser."""
    assert "vllm-cpu" in _specs("vllm")
    c = container(SPECS["vllm-cpu"])
    assert c["image"] == vllm.CPU_IMAGE and "VLLM_CPU_KVCACHE_SPACE" in env_names(c)


# --- llama.cpp: llama-server's definitions ------------------------------------------------------


@functools.cache
def llama_server_options() -> tuple[dict[str, bool], frozenset[str], str]:
    """(flag -> takes a value, environment variables read, routes source) for llama-server at the
    vendored llama.cpp: common/arg.cpp's add_opt(common_arg(...)) entries offered to the server
    example (LLAMA_EXAMPLE_COMMON ones are inherited unless excluded)."""
    root = CACHE / f"llamacpp-{llama_cpp_python_version()}"
    if not (root / ".installed").exists():
        pytest.fail(f"{root} is missing: run `make runtime-parsers`")
    text = (root / "common" / "arg.cpp").read_text()
    flags: dict[str, bool] = {}
    env: set[str] = set()
    for block in text.split("add_opt(common_arg(")[1:]:
        block = block.split("\n    add_opt(", 1)[0]
        examples = re.search(r"\.set_examples\(\{([^}]*)\}\)", block)
        excludes = re.search(r"\.set_excludes\(\{([^}]*)\}\)", block)
        offered = examples is None or re.search(r"LLAMA_EXAMPLE_(COMMON|SERVER)\b",
                                                examples.group(1))
        if not offered or (excludes and "LLAMA_EXAMPLE_SERVER" in excludes.group(1)):
            continue
        handler = re.search(r"\[\]\(common_params\s*&\s*\w*\s*(,[^)]*)?\)", block)
        negatable = bool(handler and handler.group(1) and "bool" in handler.group(1))
        takes_value = bool(handler and handler.group(1)) and not negatable
        # The flags, then (a flag that is on or off) the flags that turn it off.
        lists = re.findall(r"^\s*\{([^{}]*)\}", block, re.M)[:2 if negatable else 1]
        for names in lists:
            for flag in re.findall(r'"(-[^"]+)"', names):
                flags[flag] = takes_value
        env.update(re.findall(r'\.set_env\("([A-Z0-9_]+)"\)', block))
    for source in (root / "common").glob("*.cpp"):
        env.update(re.findall(r'(?:getenv|get_env|get_path_from_env)\(\s*"([A-Z0-9_]+)"',
                              source.read_text()))
        env.update(re.findall(r'\{"([A-Z][A-Z0-9_]+)",\s*fs::path', source.read_text()))
    routes = "".join(p.read_text() for p in (root / "tools" / "server").glob("*.cpp"))
    return flags, frozenset(env), routes


def llama_server_parse(args: list[str]) -> str | None:
    """llama-server's verdict on `args`: None, or its message (common/arg.cpp's wording)."""
    flags, _, _ = llama_server_options()
    i = 0
    while i < len(args):
        arg = args[i]
        name = arg.split("=", 1)[0]
        if name not in flags:
            return f"error: invalid argument: {arg}"
        if flags[name] and "=" not in arg:
            i += 1
            if i >= len(args):
                return f"error: expected value for argument: {arg}"
        i += 1
    return None


def test_llama_server_takes_the_builders_arguments_env_and_paths() -> None:
    flags, env, routes = llama_server_options()
    assert len(flags) > 100 and flags["--port"] and not flags["--no-kv-unified"]
    for name, spec in _specs("llamacpp").items():
        c = container(spec)
        assert llama_server_parse(c["args"]) is None, (name, llama_server_parse(c["args"]))
        assert env_names(c) <= env, (name, env_names(c) - env)
        for path in probe_paths(c):
            assert f'"{path}"' in routes, f"llama-server serves no {path}"
        assert llama_server_parse(misspelt(c["args"])) == "error: invalid argument: --prot"


# --- TGI: the launcher's definition at its last release -----------------------------------------


@functools.cache
def tgi_contract() -> dict:
    return json.loads((CONTRACTS / "tgi.json").read_text())


def tgi_parse(args: list[str]) -> str | None:
    """text-generation-launcher's verdict on `args` (clap's wording), from its definition."""
    flags = tgi_contract()["flags"]
    i = 0
    while i < len(args):
        arg = args[i]
        name, _, inline = arg.partition("=")
        if name not in flags:
            return f"error: unexpected argument '{arg}' found"
        flag = flags[name]
        if flag["takesValue"]:
            if not inline:
                i += 1
                if i >= len(args):
                    return f"error: a value is required for '{name}' but none was supplied"
                inline = args[i]
            if "values" in flag and inline not in flag["values"]:
                return (f"error: invalid value '{inline}' for '{name}'\n  [possible values: "
                        f"{', '.join(flag['values'])}]")
        i += 1
    return None


def test_the_tgi_launcher_takes_the_builders_arguments_env_and_paths() -> None:
    contract = tgi_contract()
    assert re.fullmatch(r"[0-9a-f]{40}", contract["commit"])
    known = set(contract["env"]) | hub_env()
    for name, spec in _specs("tgi").items():
        c = container(spec)
        assert tgi_parse(c["args"]) is None, (name, tgi_parse(c["args"]))
        assert env_names(c) <= known, (name, env_names(c) - known)
        assert probe_paths(c) <= set(contract["paths"]), (name, probe_paths(c))
        assert tgi_parse(misspelt(c["args"])) == "error: unexpected argument '--prot' found"
    assert tgi_parse(["--quantize", "awq4"]).startswith("error: invalid value 'awq4'")


# --- the pins and the contracts stay in step ----------------------------------------------------


def test_pinned_images_are_the_releases_the_contracts_check() -> None:
    assert f"vllm/vllm-openai:v{pinned('vllm')}" == vllm.IMAGE
    assert vllm.CPU_IMAGE.endswith(f":v{pinned('vllm')}")
    assert sglang.IMAGE.split(":")[1].startswith(f"v{pinned('sglang')}")
    assert tgi.IMAGE.endswith(":" + tgi_contract()["release"].removeprefix("v"))
    # The llama.cpp build that llama-cpp-python's locked release vendors.
    vendored = {"0.3.36": "b11312"}  # llama.cpp@0c1e57098 (its CHANGELOG), build 11312
    assert llama_cpp_python_version() in vendored, \
        "llama-cpp-python changed: name its llama.cpp build here and pin that image"
    build = vendored[llama_cpp_python_version()]
    assert f"ghcr.io/ggml-org/llama.cpp:server-{build}" == llamacpp.IMAGE
