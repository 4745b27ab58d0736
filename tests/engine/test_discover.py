"""`slam discover` against a stand-in Hub: filters, the operator's fit check, manifests that the
API server accepts and `slam run` runs, and the Hub's failures."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from slam import discover as disc
from slam_operator.modeldeployment.status import fits
from tests.conftest import STUB_API_KEY
from tests.fakes.hub import FakeHub, Repo
from tests.servers import Stub

SLAM = str(Path(sys.executable).parent / "slam")
SHA_SMOL = "a" * 40
SHA_MISTRAL = "b" * 40

MISTRAL_CONFIG = {"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                  "hidden_size": 4096, "head_dim": 128, "max_position_embeddings": 32768}
SMOL_CONFIG = {"num_hidden_layers": 24, "num_attention_heads": 32, "num_key_value_heads": 32,
               "hidden_size": 2048, "max_position_embeddings": 8192}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    def config(name: str, body: dict) -> dict[str, Path]:
        path = tmp_path / name / "config.json"
        path.parent.mkdir()
        path.write_text(json.dumps(body))
        return {"config.json": path}

    h = FakeHub({
        "HuggingFaceTB/SmolLM2-1.7B-Instruct": Repo(
            sha=SHA_SMOL, parameters=1_711_376_384, downloads=900_000, likes=600,
            files=config("smol", SMOL_CONFIG)),
        "Qwen/Qwen2.5-3B-Instruct": Repo(parameters=3_085_938_688, license="other",
                                         downloads=2_000_000, likes=300),
        "meta-llama/Llama-3.2-1B-Instruct": Repo(behaviour="gated", license="llama3.2",
                                                 parameters=1_235_814_400,
                                                 downloads=3_000_000, likes=2000),
        "mistralai/Mistral-7B-Instruct-v0.3": Repo(
            sha=SHA_MISTRAL, parameters=7_248_023_552, downloads=1_500_000, likes=1500,
            files=config("mistral", MISTRAL_CONFIG)),
        "someone/no-metadata-chat": Repo(parameters=None, downloads=500_000, likes=10),
        "TinyLlama/TinyLlama-1.1B-Chat-v1.0": Repo(parameters=1_100_048_384, downloads=100,
                                                   likes=5),
        "stabilityai/sdxl-turbo": Repo(pipeline_tag="text-to-image", downloads=5_000_000),
        "broken/model-errors": Repo(behaviour="error", parameters=1_000_000_000,
                                    downloads=400_000, likes=50),
    }, page_size=2).start()
    try:
        yield h
    finally:
        h.stop()


def slam(*args: str, hub: FakeHub, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "COLUMNS": "250", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_TOKEN", None)
    return subprocess.run([SLAM, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=180)


FILTERS = ["--max-params", "8B", "--license", "apache-2.0", "--min-downloads", "1000",
           "--instance-type", "g4dn.xlarge", "--runtime", "tgi", "--quantization", "bitsandbytes"]


def test_the_filters_pick_the_candidates_and_say_why_the_others_are_out(
        hub: FakeHub, tmp_path: Path) -> None:
    r = slam("discover", *FILTERS, hub=hub, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out, errs = r.stdout, " ".join(r.stderr.split())
    assert "HuggingFaceTB/SmolLM2-1.7B-Instruct" in out
    assert "mistralai/Mistral-7B-Instruct-v0.3" in out
    assert "stabilityai" not in out + errs  # another task: the Hub never lists it
    assert "left out Qwen/Qwen2.5-3B-Instruct: licence other is not in apache-2.0" in errs
    assert "meta-llama" not in out + errs  # gated: the Hub lists it only when asked
    assert ("left out someone/no-metadata-chat: parameter count unknown (no safetensors "
            "metadata on the Hub)") in errs
    assert "left out TinyLlama/TinyLlama-1.1B-Chat-v1.0: 100 downloads < 1,000" in errs
    # Six ungated text-generation models, in pages of two: every page was read.
    assert sum(p.startswith("/api/models?") for p, _ in hub.requests) == 3
    assert "2 candidate(s) fit" in out
    gated = slam("discover", *FILTERS, "--gated", hub=hub, cwd=tmp_path)
    assert ("left out meta-llama/Llama-3.2-1B-Instruct: licence llama3.2 is not in apache-2.0"
            in " ".join(gated.stderr.split()))


def test_fit_and_price_are_the_operators_and_a_refused_model_is_not_written(
        hub: FakeHub, tmp_path: Path) -> None:
    """Mistral-7B does not fit a T4 (16 GiB) in 16 bits with its 32k context: the operator
    says so, so discovery takes 8-bit; a model whose Hub lookup fails is shown, not written."""
    criteria = disc.Criteria(max_parameters=8 * 10**9, licenses=("apache-2.0",),
                             min_downloads=1000, instance_type="g4dn.xlarge",
                             runtime="tgi", quantizations=(None, "bitsandbytes"))
    found = disc.discover(criteria, endpoint=hub.url, timeout=5)
    by_id = {x.listed.id: x for x in found.candidates}
    mistral = by_id["mistralai/Mistral-7B-Instruct-v0.3"]
    assert [o.fits for o in mistral.options] == ["False", "True"]
    assert mistral.chosen is not None and mistral.chosen.quantization == "bitsandbytes"
    assert mistral.sha == SHA_MISTRAL
    # The same words and numbers as the ModelDeployment's Fits condition.
    from slam_operator.modeldeployment.gpu import shape_from_config
    spec = disc.deployment_spec(mistral.listed.id, SHA_MISTRAL, criteria, None)
    cond = fits(spec, 7_248_023_552, {}, shape_from_config(MISTRAL_CONFIG))
    assert mistral.options[0].message == cond.message and cond.status == "False"
    assert "4.0 GiB of KV cache" in cond.message
    assert mistral.hourly_usd == 0.526  # g4dn.xlarge in the operator's table
    smol = by_id["HuggingFaceTB/SmolLM2-1.7B-Instruct"]
    assert smol.chosen is not None and smol.chosen.quantization is None
    broken = by_id["broken/model-errors"]
    assert broken.chosen is None and broken.rank_reason.startswith("not written: the Hub "
                                                                    "answered HTTP 500")
    ranked = [x.listed.id for x in found.candidates]
    assert ranked == ["mistralai/Mistral-7B-Instruct-v0.3",
                      "HuggingFaceTB/SmolLM2-1.7B-Instruct", "broken/model-errors"]
    assert mistral.rank_reason.startswith("#1: fits at bitsandbytes (~")


def test_written_manifests_validate_and_run(hub: FakeHub, tmp_path: Path, stub: Stub) -> None:
    out = tmp_path / "candidates"
    r = slam("discover", *FILTERS, "--out", str(out), "--evaluation", "replace-gpt4",
             "--reference-base-url", stub.base_url, hub=hub, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["evaluation-replace-gpt4.yaml",
                     "modeldeployment-mistral-7b-instruct-v0-3.yaml",
                     "modeldeployment-smollm2-1-7b-instruct.yaml"]
    md = yaml.safe_load((out / "modeldeployment-mistral-7b-instruct-v0-3.yaml").read_text())
    assert md["spec"]["model"] == {"id": "mistralai/Mistral-7B-Instruct-v0.3",
                                   "revision": SHA_MISTRAL}
    assert md["spec"]["quantization"] == "bitsandbytes"
    assert md["spec"]["instanceType"] == "g4dn.xlarge" and "runtime" not in md["spec"]  # tgi
    assert md["metadata"]["annotations"]["slam.dev/license"] == "apache-2.0"
    ev = yaml.safe_load((out / "evaluation-replace-gpt4.yaml").read_text())
    assert [t["name"] for t in ev["spec"]["targets"]] == [
        "reference", "mistral-7b-instruct-v0-3", "smollm2-1-7b-instruct"]
    assert "next: put the feature's prompts in" in " ".join(r.stdout.split())
    (out / "prompts.yaml").write_text(yaml.safe_dump({"name": "feature", "prompts": [
        {"id": f"q{i}", "messages": [{"role": "user", "content": f"Question {i}?"}]}
        for i in range(5)]}))
    v = slam("validate", str(out), hub=hub, cwd=tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr
    # slam run of the written Evaluation, its three targets answered by stand-ins.
    env_key = "SLAM_SECRET_OPENAI_API_KEY__API_KEY"
    served = Stub(tmp_path / "served").start()  # self-hosted servers take any key
    try:
        run = subprocess.run(
            [SLAM, "run", str(out), "--limit", "3", "--no-progress",
             "--store", f"sqlite:///{tmp_path / 'results.db'}",
             "--endpoint", f"mistral-7b-instruct-v0-3={served.base_url}",
             "--endpoint", f"smollm2-1-7b-instruct={served.base_url}"],
            capture_output=True, text=True, cwd=tmp_path, timeout=600,
            env={**os.environ, env_key: STUB_API_KEY, "HF_ENDPOINT": hub.url})
    finally:
        served.stop()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "9 requests sent (0 failed)" in " ".join((run.stdout + run.stderr).split())


@pytest.mark.slow  # the Hub client's own backoff: about 25 s per listing that keeps failing
def test_a_rate_limit_is_retried_and_a_failing_page_keeps_what_came(
        hub: FakeHub, tmp_path: Path) -> None:
    hub.list_faults = [429]  # the first listing request: retried after Retry-After
    # A model's own lookup: rate limited, then a server error, then found.
    hub.repos["mistralai/Mistral-7B-Instruct-v0.3"].faults = [429, 503]
    criteria = disc.Criteria(licenses=("apache-2.0",))
    found = disc.discover(criteria, endpoint=hub.url, timeout=5)
    assert found.warnings == []
    mistral = next(x for x in found.candidates
                   if x.listed.id == "mistralai/Mistral-7B-Instruct-v0.3")
    assert mistral.sha == SHA_MISTRAL and mistral.chosen is not None
    # One that keeps failing is shown with the Hub's answer, after the retries.
    broken = next(x for x in found.candidates if x.listed.id == "broken/model-errors")
    assert broken.note == "the Hub answered HTTP 500 for broken/model-errors"
    assert sum(p.startswith("/api/models/broken/model-errors") for p, _ in hub.requests) \
        == disc.LOOKUP_ATTEMPTS
    hub.fail_from_page = 1  # the first page (two models) and then 500 for good
    partial = disc.discover(criteria, endpoint=hub.url, timeout=5)
    assert len(partial.warnings) == 1
    assert "answered HTTP 500 after 2 models" in partial.warnings[0]
    seen = {x.listed.id for x in partial.candidates} | {m for m, _ in partial.dropped}
    assert len(seen) == 2
    r = slam("discover", "--license", "apache-2.0", hub=hub, cwd=tmp_path)
    assert r.returncode == 0 and "HTTP 500 after 2 models" in " ".join(r.stderr.split())


def test_bad_options_name_the_option_and_ask_nothing(hub: FakeHub, tmp_path: Path) -> None:
    r = slam("discover", "--max-params", "lots", "--quantization", "awq", "--runtime", "tgi",
             "--quantization", "eetq", hub=hub, cwd=tmp_path)
    assert r.returncode == 2
    text = " ".join(r.stderr.split())
    assert "--max-params: not a parameter count: 'lots'" in text
    assert "--quantization awq: discovery tries the quantizations a runtime applies" in text
    assert "--quantization eetq" not in text  # TGI applies EETQ
    r = slam("discover", "--quantization", "eetq", hub=hub, cwd=tmp_path)
    assert r.returncode == 2 and "--quantization eetq: " in r.stderr
    assert "TGI-only" in r.stderr or "tgi" in r.stderr
    assert hub.requests == []


def test_every_written_manifest_is_accepted_by_the_api_server(
        hub: FakeHub, k8s, namespace: str) -> None:
    from kubernetes import client

    criteria = disc.Criteria(licenses=("apache-2.0",), gated=True, runtime="tgi",
                             instance_type="g4dn.xlarge",
                             quantizations=(None, "bitsandbytes-nf4"))
    hub.repos["meta-llama/Llama-3.2-1B-Instruct"].license = "apache-2.0"  # let it through
    found = disc.discover(criteria, endpoint=hub.url, timeout=5)
    docs = disc.manifests(found.candidates, criteria, evaluation="discovered",
                          prompt_set="prompts.yaml")
    kinds = [d["kind"] for d in docs]
    assert kinds.count("ModelDeployment") >= 3 and kinds[-1] == "Evaluation"
    # The gated model is written with the token Secret it needs.
    llama = next(d for d in docs if d["spec"].get("model", {}).get("id", "").startswith("meta"))
    assert llama["spec"]["hfTokenSecretRef"] == {"name": "hf-token", "key": "token"}
    api = client.CustomObjectsApi(k8s)
    plural = {"ModelDeployment": "modeldeployments", "Evaluation": "evaluations"}
    for doc in docs:
        api.create_namespaced_custom_object("slam.dev", "v1alpha1", namespace,
                                            plural[doc["kind"]], doc,
                                            field_validation="Strict")


LISTED = [disc.Listed(f"org/m{i}", downloads=d, likes=lk, gated=g, license=lic, parameters=p)
          for i, (d, lk, g, lic, p) in enumerate(itertools.product(
              (0, 50, 5000), (0, 10), (False, True), ("apache-2.0", "MIT", None),
              (None, 500_000_000, 9_000_000_000)))]
CRITERIA = [disc.Criteria(licenses=lic, min_downloads=d, min_likes=lk, gated=g,
                          max_parameters=p)
            for lic, d, lk, g, p in itertools.product(
                ((), ("apache-2.0",), ("mit", "apache-2.0")), (0, 100), (0, 5), (False, True),
                (None, 1_000_000_000))]


@pytest.mark.parametrize("c", CRITERIA, ids=lambda c: "-".join(map(str, (
    c.licenses, c.min_downloads, c.min_likes, c.gated, c.max_parameters))))
def test_filters_combine_as_a_conjunction(c: disc.Criteria) -> None:
    """Every combination of criteria against every kind of model: kept exactly when each
    filter alone keeps it."""
    for m in LISTED:
        each = [
            not c.licenses or (m.license or "").lower() in {x.lower() for x in c.licenses},
            m.downloads >= c.min_downloads,
            m.likes >= c.min_likes,
            c.gated or not m.gated,
            c.max_parameters is None or (m.parameters is not None
                                         and m.parameters <= c.max_parameters),
        ]
        assert (disc.screen(m, c) is None) == all(each), (m, c, disc.screen(m, c))


def test_names_are_valid_labels_and_distinct() -> None:
    import re
    long_a = "org/" + "a" * 80 + "-x"
    long_b = "org/" + "a" * 80 + "-y"
    names = [disc.k8s_name(i) for i in ("Qwen/Qwen2.5-0.5B", "org/7b_model", long_a, long_b)]
    assert names[:2] == ["qwen2-5-0-5b", "m-7b-model"]
    assert names[2] != names[3]
    assert all(re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", n) and len(n) <= 63 for n in names)
    assert disc.parse_parameters("1.5B") == 1_500_000_000
    assert disc.parse_parameters("500M") == 500_000_000
    with pytest.raises(ValueError, match="must be above 0"):
        disc.parse_parameters("0")


def test_a_model_too_big_as_is_is_written_as_its_quantized_variant(tmp_path: Path) -> None:
    """Qwen2.5-32B does not fit an L40S (48 GiB) in 16 bits; its most downloaded AWQ
    repository does, and the manifest serves that repository with quantization awq."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"num_hidden_layers": 64, "num_attention_heads": 40,
                                  "num_key_value_heads": 8, "hidden_size": 5120,
                                  "max_position_embeddings": 32768}))
    base = "Qwen/Qwen2.5-32B-Instruct"
    quantized = ("base_model:quantized:" + base,)
    h = FakeHub({
        base: Repo(parameters=32_763_876_352, downloads=800_000, files={"config.json": config}),
        f"{base}-AWQ": Repo(sha="c" * 40, parameters=1, tags=("awq", *quantized),
                            dtypes={"I32": 3_910_000_000, "F16": 1_820_000_000},
                            downloads=300_000, files={"config.json": config}),
        "someone/Qwen2.5-32B-Instruct-AWQ": Repo(parameters=1, tags=quantized,
                                                 dtypes={"I32": 3_910_000_000,
                                                         "F16": 1_820_000_000},
                                                 downloads=2_000),
        f"{base}-GPTQ-Int4": Repo(parameters=1, tags=("gptq", *quantized),
                                  dtypes={"I32": 3_950_000_000, "F16": 1_820_000_000},
                                  downloads=50_000, files={"config.json": config}),
    }).start()
    try:
        criteria = disc.Criteria(instance_type="g6e.xlarge", search="32B-Instruct")
        found = disc.discover(criteria, endpoint=h.url, timeout=5)
        x = next(c for c in found.candidates if c.listed.id == base)
        assert [(o.label, o.fits) for o in x.options] == [
            ("as is", "False"), (f"awq ({base}-AWQ)", "True"),
            (f"gptq ({base}-GPTQ-Int4)", "True")]
        assert x.chosen is not None and x.chosen.model_id == f"{base}-AWQ"
        # The operator's own words for the variant as a ModelDeployment.
        spec = disc.deployment_spec(f"{base}-AWQ", None, criteria, "awq")
        from slam_operator.modeldeployment.gpu import shape_from_config
        cond = fits(spec, 8 * 3_910_000_000 + 1_820_000_000, {},
                    shape_from_config(json.loads(config.read_text())))
        assert x.chosen.message == cond.message and "of KV cache" in cond.message
        # The AWQ repository is also listed on its own: as the checkpoint it is.
        awq = next(c for c in found.candidates if c.listed.id == f"{base}-AWQ")
        assert [(o.label, o.fits) for o in awq.options] == [("awq", "True")]
        assert "someone/Qwen2.5-32B-Instruct-AWQ" in {c.listed.id for c in found.candidates}
        every = disc.manifests(found.candidates, criteria, evaluation="e", prompt_set="p.yaml")
        served = [d["spec"]["model"]["id"] for d in every if d["kind"] == "ModelDeployment"]
        assert len(served) == len(set(served))  # each repository once
        docs = disc.manifests([x], criteria, evaluation="e", prompt_set="p.yaml")
        assert docs[0]["spec"]["model"] == {"id": f"{base}-AWQ", "revision": "c" * 40}
        assert docs[0]["spec"]["quantization"] == "awq"
        assert docs[0]["metadata"]["name"] == "qwen2-5-32b-instruct"
        assert x.rank_reason.startswith(f"#1: fits at awq ({base}-AWQ)")
        # Without variants, it fits nowhere and is not written.
        plain = disc.discover(disc.Criteria(instance_type="g6e.xlarge", search="32B-Instruct",
                                            variants=False), endpoint=h.url, timeout=5)
        y = next(c for c in plain.candidates if c.listed.id == base)
        assert y.chosen is None and y.rank_reason.startswith("not written: needs ~")
    finally:
        h.stop()


@pytest.fixture
def cpu_hub(tmp_path: Path) -> Iterator[FakeHub]:
    """Base models with their GGUF repositories, for CPU instance types."""
    def files(name: str, config: dict | None, *ggufs: str) -> dict[str, Path]:
        folder = tmp_path / name
        folder.mkdir()
        out = {}
        for f in ggufs:
            (folder / f).write_bytes(b"GGUF")
            out[f] = folder / f
        if config is not None:
            (folder / "config.json").write_text(json.dumps(config))
            out["config.json"] = folder / "config.json"
        return out

    smol, mistral = "HuggingFaceTB/SmolLM2-1.7B-Instruct", "mistralai/Mistral-7B-Instruct-v0.3"
    h = FakeHub({
        smol: Repo(sha=SHA_SMOL, parameters=1_711_376_384, downloads=900_000,
                   files=files("smol", SMOL_CONFIG)),
        "bartowski/SmolLM2-1.7B-Instruct-GGUF": Repo(
            sha="d" * 40, gguf=True, parameters=1_711_376_384, downloads=40_000,
            tags=(f"base_model:quantized:{smol}",),
            files=files("smol-gguf", None, "SmolLM2-1.7B-Instruct-Q4_K_M.gguf",
                        "SmolLM2-1.7B-Instruct-Q8_0.gguf", "SmolLM2-1.7B-Instruct-f16.gguf")),
        mistral: Repo(sha=SHA_MISTRAL, parameters=7_248_023_552, downloads=1_500_000,
                      files=files("mistral", MISTRAL_CONFIG)),
        "bartowski/Mistral-7B-Instruct-v0.3-GGUF": Repo(
            sha="e" * 40, gguf=True, parameters=7_248_023_552, downloads=60_000,
            tags=(f"base_model:quantized:{mistral}",),
            files=files("mistral-gguf", None, "Mistral-7B-Instruct-v0.3-Q8_0.gguf",
                        "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf",
                        "Mistral-7B-Instruct-v0.3-Q6_K-00001-of-00002.gguf")),
    }).start()
    try:
        yield h
    finally:
        h.stop()


def test_on_a_cpu_instance_llamacpp_gets_the_gguf_file_that_fits(
        cpu_hub: FakeHub, tmp_path: Path) -> None:
    """c7i.xlarge (8 GiB; 6 GiB for the pod): Mistral-7B at Q4_K_M (~5.1 GiB with its KV
    cache) fits where its Q8_0 would not; both sized by the operator's llama.cpp fit check."""
    criteria = disc.Criteria(runtime="llamacpp", instance_type="c7i.xlarge",
                             gguf_files=("Q8_0", "Q4_K_M"))
    found = disc.discover(criteria, endpoint=cpu_hub.url, timeout=5)
    by_id = {x.listed.id: x for x in found.candidates}
    mistral = by_id["mistralai/Mistral-7B-Instruct-v0.3"]
    repo = "bartowski/Mistral-7B-Instruct-v0.3-GGUF"
    assert [(o.label, o.fits) for o in mistral.options] == [
        (f"Mistral-7B-Instruct-v0.3-Q8_0.gguf ({repo})", "False"),
        (f"Mistral-7B-Instruct-v0.3-Q4_K_M.gguf ({repo})", "True")]
    from slam_operator.modeldeployment.gpu import shape_from_config
    spec = disc.deployment_spec(repo, None, criteria, None,
                                file="Mistral-7B-Instruct-v0.3-Q4_K_M.gguf")
    assert spec.resources is not None and spec.resources.memory == "6Gi"
    cond = fits(spec, 7_248_023_552, {}, shape_from_config(MISTRAL_CONFIG))
    assert mistral.chosen is not None and mistral.chosen.message == cond.message
    assert "0.50 GiB of KV cache for 4096 tokens" in cond.message
    assert mistral.hourly_usd == 0.1785
    smol = by_id["HuggingFaceTB/SmolLM2-1.7B-Instruct"]
    assert smol.chosen is not None and smol.chosen.file == "SmolLM2-1.7B-Instruct-Q8_0.gguf"
    # The GGUF repositories are listed too, and serve their own files.
    own = by_id["bartowski/SmolLM2-1.7B-Instruct-GGUF"]
    assert own.chosen is not None and own.chosen.file == "SmolLM2-1.7B-Instruct-Q8_0.gguf"
    out = tmp_path / "cpu"
    r = slam("discover", "--runtime", "llamacpp", "--instance-type", "c7i.xlarge",
             "--gguf", "Q8_0", "--gguf", "Q4_K_M", "--out", str(out), hub=cpu_hub, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Candidates on c7i.xlarge (CPU, 6 GiB per pod, llamacpp)" in " ".join(r.stdout.split())
    md = yaml.safe_load((out / "modeldeployment-mistral-7b-instruct-v0-3.yaml").read_text())
    assert md["spec"] == {"model": {"id": repo, "revision": "e" * 40,
                                    "file": "Mistral-7B-Instruct-v0.3-Q4_K_M.gguf"},
                          "runtime": "llamacpp", "instanceType": "c7i.xlarge",
                          "resources": {"memory": "6Gi"}}
    served = sorted(yaml.safe_load(p.read_text())["spec"]["model"]["id"]
                    for p in out.glob("modeldeployment-*.yaml"))
    assert served == ["bartowski/Mistral-7B-Instruct-v0.3-GGUF",
                      "bartowski/SmolLM2-1.7B-Instruct-GGUF"]  # each repository once
    (out / "prompts.yaml").write_text(yaml.safe_dump(
        [{"id": "q1", "messages": [{"role": "user", "content": "Hi?"}]}]))
    v = slam("validate", str(out), hub=cpu_hub, cwd=tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr


def test_on_a_cpu_instance_vllm_serves_what_fits_its_memory(cpu_hub: FakeHub) -> None:
    """vLLM's CPU backend needs the weights, ~4.5 GiB for its own processes (measured) and a
    GiB of KV cache: SmolLM2-1.7B (3.2 GiB in bf16) does not fit a c7i.xlarge's 6 GiB, it
    does a c7i.2xlarge's 14 GiB."""
    small = disc.discover(disc.Criteria(runtime="vllm", instance_type="c7i.xlarge"),
                          endpoint=cpu_hub.url, timeout=5)
    [tight] = [x for x in small.candidates if x.listed.id == "HuggingFaceTB/SmolLM2-1.7B-Instruct"]
    assert [(o.label, o.fits) for o in tight.options] == [("as is", "False")]
    assert "give it at least 8.7 GiB" in tight.options[0].message
    criteria = disc.Criteria(runtime="vllm", instance_type="c7i.2xlarge")
    found = disc.discover(criteria, endpoint=cpu_hub.url, timeout=5)
    by_id = {x.listed.id: x for x in found.candidates}
    smol = by_id["HuggingFaceTB/SmolLM2-1.7B-Instruct"]
    assert [(o.label, o.fits) for o in smol.options] == [("as is", "True")]
    assert "leaves a 6 GiB KV cache (VLLM_CPU_KVCACHE_SPACE)" in smol.options[0].message
    mistral = by_id["mistralai/Mistral-7B-Instruct-v0.3"]
    assert [o.fits for o in mistral.options] == ["False"]  # 13.5 GiB of weights in 14 GiB
    doc = disc.manifests([smol], criteria, evaluation="e", prompt_set="p.yaml")[0]
    assert doc["spec"]["gpus"] == 0 and doc["spec"]["resources"] == {"memory": "14Gi"}
    assert doc["spec"]["runtime"] == "vllm"


def test_runtime_and_instance_type_must_go_together(cpu_hub: FakeHub, tmp_path: Path) -> None:
    for args, says in (
            (["--runtime", "llamacpp"], "--runtime llamacpp: runs on CPU instance types"),
            (["--runtime", "tgi", "--instance-type", "c7i.xlarge"], "has no GPU"),
            (["--instance-type", "x9.huge"], "--instance-type x9.huge: not in the price table"),
            (["--runtime", "llamacpp", "--instance-type", "c7i.xlarge", "--gguf", "Q9"],
             "--gguf Q9: one of")):
        r = slam("discover", *args, hub=cpu_hub, cwd=tmp_path)
        assert r.returncode == 2 and says in " ".join(r.stderr.split()), (args, r.stderr)
    assert cpu_hub.requests == []


def test_cpu_manifests_are_accepted_by_the_api_server(cpu_hub: FakeHub, k8s,
                                                      namespace: str) -> None:
    from kubernetes import client

    api = client.CustomObjectsApi(k8s)
    plural = {"ModelDeployment": "modeldeployments", "Evaluation": "evaluations"}
    for runtime, instance in (("llamacpp", "c7i.xlarge"), ("vllm", "c7i.2xlarge")):
        criteria = disc.Criteria(runtime=runtime, instance_type=instance)
        found = disc.discover(criteria, endpoint=cpu_hub.url, timeout=5)
        docs = disc.manifests(found.candidates, criteria, evaluation=f"cpu-{runtime}",
                              prompt_set="prompts.yaml")
        assert sum(d["kind"] == "ModelDeployment" for d in docs) >= 1
        for doc in docs:
            if doc["kind"] == "ModelDeployment":
                doc["metadata"]["name"] = f"{runtime}-{doc['metadata']['name']}"[:63]
            else:
                for t in doc["spec"]["targets"][1:]:
                    t["name"] = t["modelDeploymentRef"]["name"] = \
                        f"{runtime}-{t['name']}"[:63]
            api.create_namespaced_custom_object("slam.dev", "v1alpha1", namespace,
                                                plural[doc["kind"]], doc,
                                                field_validation="Strict")
