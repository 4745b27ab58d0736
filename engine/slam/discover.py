"""Find open models on the Hugging Face Hub that could replace an API model, and write the
manifests that test them.

`discover` lists the Hub's models for a task (`HfApi.list_models`, paged, most downloaded first;
its own backoff retries 429 and 5xx), screens each on what the listing says (parameters from
the safetensors metadata, licence, downloads, likes, gated), then looks each survivor up as the
operator will (`hub.lookup`: the commit, the licence, config.json for the KV cache) and asks the
operator's own fit check (`status.fits`) whether it fits the instance type at each quantization
asked for, with the price from the same table the operator and the cost model use. The
estimates are therefore the ones the `ModelDeployment` will show once applied, and a model the
operator would refuse is never written without saying so.

The pure parts (`screen`, `rank`, `manifests`, `k8s_name`) take what the Hub said and return
decisions; only `discover` talks to the Hub.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from slam.api.modeldeployment import ModelDeploymentSpec

DNS_LABEL_MAX = 63
# Quantizations a runtime applies to full-precision weights when it loads them. AWQ and GPTQ
# need weights quantized beforehand (a repository of their own).
ON_THE_FLY = ("fp8", "bitsandbytes", "bitsandbytes-nf4", "bitsandbytes-fp4", "eetq")


@dataclass(frozen=True)
class Criteria:
    """What a platform engineer asks for."""

    task: str = "text-generation"
    search: str | None = None
    max_parameters: int | None = None
    licenses: tuple[str, ...] = ()  # allowed licences (Hub ids such as apache-2.0); () = any
    min_downloads: int = 0
    min_likes: int = 0
    gated: bool = False  # include gated models (they need spec.hfTokenSecretRef)
    runtime: str = "vllm"
    instance_type: str = "g5.xlarge"
    gpus: int = 1
    quantizations: tuple[str | None, ...] = (None,)  # tried in order; None = the weights as is
    variants: bool = True  # when none of those fits: AWQ/GPTQ repositories quantized from it
    # llamacpp: GGUF files tried in this order (the first that fits is written)
    gguf_files: tuple[str, ...] = ("Q4_K_M", "Q5_K_M", "Q8_0")

    @property
    def on_cpu(self) -> bool:
        """A CPU instance type: llamacpp, or vLLM's CPU backend."""
        from slam.pricing import INSTANCE_TYPES

        it = INSTANCE_TYPES.get(self.instance_type)
        return it is not None and it.gpus == 0
    limit: int = 5
    scan: int = 100  # listed models looked at, at most


@dataclass(frozen=True)
class Listed:
    """A model as the Hub's listing shows it."""

    id: str
    downloads: int = 0
    likes: int = 0
    gated: bool = False
    license: str | None = None
    parameters: int | None = None
    pipeline_tag: str | None = None
    tags: tuple[str, ...] = ()

    @property
    def method(self) -> str | None:
        """AWQ or GPTQ when this repository is itself a quantized checkpoint."""
        return variant_method(self.tags, self.id)

    @classmethod
    def of(cls, info: object) -> Listed:
        """From a huggingface_hub ModelInfo."""
        card = getattr(info, "card_data", None)
        lic = card.get("license") if card is not None else None
        if not lic:
            lic = next((t.removeprefix("license:") for t in getattr(info, "tags", None) or ()
                        if t.startswith("license:")), None)
        st = getattr(info, "safetensors", None)
        return cls(
            id=info.id,  # type: ignore[attr-defined]
            downloads=int(getattr(info, "downloads", 0) or 0),
            likes=int(getattr(info, "likes", 0) or 0),
            gated=bool(getattr(info, "gated", False)),
            license=str(lic) if lic else None,
            parameters=_count(st) or _gguf_count(getattr(info, "gguf", None)),
            pipeline_tag=getattr(info, "pipeline_tag", None),
            tags=tuple(getattr(info, "tags", None) or ()),
        )


def _count(st: object | None) -> int | None:
    """The operator's parameter count from the safetensors metadata (packed 4-bit unpacked)."""
    from slam_operator.modeldeployment.hub import parameter_count

    if st is None or not getattr(st, "total", None):
        return None
    return parameter_count(getattr(st, "parameters", None), st.total)  # type: ignore[attr-defined]


def _gguf_count(gguf: object | None) -> int | None:
    return int(gguf["total"]) if isinstance(gguf, dict) and gguf.get("total") else None


def screen(m: Listed, c: Criteria) -> str | None:
    """Why the listing alone rules `m` out, or None when it stays in."""
    if c.licenses and (m.license or "").lower() not in {x.lower() for x in c.licenses}:
        return f"licence {m.license or 'not stated'} is not in {', '.join(c.licenses)}"
    if m.downloads < c.min_downloads:
        return f"{m.downloads:,} downloads < {c.min_downloads:,}"
    if m.likes < c.min_likes:
        return f"{m.likes:,} likes < {c.min_likes:,}"
    if m.gated and not c.gated:
        return "gated (pass --gated to include gated models)"
    if c.max_parameters is not None:
        if m.parameters is None:
            return "parameter count unknown (no safetensors metadata on the Hub)"
        if m.parameters > c.max_parameters:
            return f"{_params(m.parameters)} parameters > {_params(c.max_parameters)}"
    return None


@dataclass(frozen=True)
class Option:
    """One way to serve a candidate: a quantization (of its own weights, or of a quantized
    variant's repository), and what the operator's fit check says."""

    quantization: str | None
    total_gib: float | None
    fits: str  # True | False | Unknown, as the ModelDeployment's Fits condition
    message: str
    model_id: str | None = None  # a variant repository (AWQ, GPTQ, GGUF) instead of its own
    sha: str | None = None  # the variant's commit
    file: str | None = None  # llamacpp: the GGUF file

    @property
    def label(self) -> str:
        what = self.file or self.quantization
        if self.model_id:
            return f"{what} ({self.model_id})"
        return what or "as is"


@dataclass(frozen=True)
class Candidate:
    listed: Listed
    sha: str | None
    options: tuple[Option, ...]
    hourly_usd: float | None
    note: str = ""  # what the lookup said when it could not resolve the model
    rank_reason: str = ""

    @property
    def chosen(self) -> Option | None:
        """The first quantization (in the order asked) that fits, else None."""
        return next((o for o in self.options if o.fits == "True"), None)


def options_for(m: Listed, c: Criteria, shape: object | None) -> tuple[Option, ...]:
    """The operator's fit check (the Fits condition a ModelDeployment will show) for each
    quantization asked for; for a quantized checkpoint, its own method only."""
    if c.runtime == "llamacpp":
        return ()  # GGUF files only: see gguf_options
    if m.method is not None:
        return (option(m.id, m.parameters, c, m.method, shape),)
    if c.on_cpu:  # vLLM's CPU backend serves the weights as they are
        return (option(m.id, m.parameters, c, None, shape),)
    return tuple(option(m.id, m.parameters, c, q, shape) for q in c.quantizations)


def option(model_id: str, parameters: int | None, c: Criteria, quantization: str | None,
           shape: object | None, variant: str | None = None, sha: str | None = None,
           file: str | None = None) -> Option:
    from slam_operator.modeldeployment import gpu
    from slam_operator.modeldeployment.status import fits, gpu_estimate

    spec = deployment_spec(variant or model_id, None, c, quantization, file=file)
    cond = fits(spec, parameters, {}, shape)  # type: ignore[arg-type]
    total = None
    if parameters and c.runtime == "llamacpp" and (bits := gpu.gguf_bits(file)):
        total = gpu.estimate_llamacpp_memory(
            parameters, bits, shape.kv_bytes_per_token if shape else None,  # type: ignore[attr-defined]
            spec.max_total_tokens or gpu.LLAMACPP_DEFAULT_CONTEXT).total_gib
    elif parameters and c.on_cpu:
        total = gpu.vllm_cpu_least_memory_gib(parameters, quantization)
    elif parameters:
        total = gpu_estimate(spec, parameters, shape).total_gib  # type: ignore[arg-type]
    return Option(quantization, total, cond.status, cond.message, variant, sha, file)


def gguf_options(repo: str, parameters: int | None, files: Iterable[str], c: Criteria,
                 shape: object | None, sha: str | None) -> tuple[Option, ...]:
    """One option per preferred GGUF file the repository has (single-file ones), in the
    order of `c.gguf_files`, each fit-checked as a llamacpp ModelDeployment of that file."""
    from slam_operator.modeldeployment import gpu

    singles = [f for f in files if f.lower().endswith(".gguf") and "-of-" not in f]
    out = []
    for kind in c.gguf_files:
        match = next((f for f in sorted(singles) if gpu.gguf_bits(f) == gpu.GGUF_BITS[kind]
                      and kind.lower() in f.lower()), None)
        if match is not None:
            out.append(option(repo, parameters, c, None, shape, variant=repo, sha=sha,
                              file=match))
    return tuple(out)


# Quantized variants published as repositories of their own, by the tag the Hub gives them.
VARIANT_METHODS = ("awq", "gptq")


def variant_method(listed_tags: Iterable[str], model_id: str) -> str | None:
    """AWQ or GPTQ, from a repository's tags or, failing those, its name."""
    tags = {t.lower() for t in listed_tags}
    for method in VARIANT_METHODS:
        if method in tags or re.search(rf"(^|[-_.]){method}([-_.]|$)", model_id.lower()):
            return method
    return None


def deployment_spec(model_id: str, sha: str | None, c: Criteria, quantization: str | None,
                    gated: bool = False, file: str | None = None) -> ModelDeploymentSpec:
    """The ModelDeployment spec a candidate is written with: on a CPU instance type, the
    memory a pod of that type can have (its RAM less the node's reserve), which the
    operator's fit check holds the model to."""
    from slam.pricing import INSTANCE_TYPES

    raw: dict = {"model": {"id": model_id}, "runtime": c.runtime,
                 "instanceType": c.instance_type}
    if c.on_cpu:
        raw["resources"] = {"memory": f"{INSTANCE_TYPES[c.instance_type].pod_memory_gib}Gi"}
        if c.runtime == "vllm":
            raw["gpus"] = 0
    elif c.runtime != "llamacpp":
        raw["gpus"] = c.gpus
    if sha:
        raw["model"]["revision"] = sha
    if file:
        raw["model"]["file"] = file
    if quantization:
        raw["quantization"] = quantization
    if gated:
        raw["hfTokenSecretRef"] = {"name": "hf-token", "key": "token"}
    return ModelDeploymentSpec.model_validate(raw)


def rank(cands: Iterable[Candidate]) -> list[Candidate]:
    """Fitting candidates first, most downloaded first (the Hub's signal of use), then the
    cheaper; each with the reason for its place."""
    def key(x: Candidate) -> tuple:
        return (x.chosen is None, -x.listed.downloads, x.hourly_usd or float("inf"), x.listed.id)

    out = []
    for i, x in enumerate(sorted(cands, key=key), 1):
        if x.chosen is None:
            why = (x.note or next((o.message for o in x.options if o.fits == "False"), None)
                   or next((o.message for o in x.options if o.fits == "Unknown"), None)
                   or "the fit is unknown")
            reason = f"not written: {why}"
        else:
            q = x.chosen.label if x.chosen.model_id else (x.chosen.quantization or "unquantized")
            reason = (f"#{i}: fits at {q} (~{x.chosen.total_gib:.1f} GiB); "
                      f"{x.listed.downloads:,} downloads, {x.listed.likes:,} likes"
                      + (f"; {x.note}" if x.note else ""))
        out.append(Candidate(x.listed, x.sha, x.options, x.hourly_usd, x.note, reason))
    return out


def k8s_name(model_id: str, suffix: str = "") -> str:
    """A DNS-1035 label for a model id: lower case, '-' for anything else, starting with a
    letter, at most 63 characters (a hash keeps two long ids apart)."""
    base = re.sub(r"[^a-z0-9]+", "-", model_id.split("/")[-1].lower()).strip("-") or "model"
    if not base[0].isalpha():
        base = f"m-{base}"
    name = f"{base}{suffix}"
    if len(name) > DNS_LABEL_MAX:
        digest = hashlib.sha256(model_id.encode()).hexdigest()[:8]
        name = f"{base[:DNS_LABEL_MAX - len(suffix) - 9].rstrip('-')}-{digest}{suffix}"
    return name


@dataclass(frozen=True)
class Reference:
    """The API model the candidates are compared with."""

    model: str = "gpt-4"
    base_url: str = "https://api.openai.com/v1"
    secret: str = "openai-api-key"
    key: str = "api-key"


def manifests(cands: Iterable[Candidate], c: Criteria, *, evaluation: str, prompt_set: str,
              reference: Reference = Reference()) -> list[dict]:
    """A ModelDeployment per fitting candidate (its resolved commit and the chosen
    quantization) and one Evaluation comparing them with the reference."""
    docs: list[dict] = []
    targets: list[dict] = [{"name": "reference", "external": {
        "baseUrl": reference.base_url, "model": reference.model,
        "apiKeySecretRef": {"name": reference.secret, "key": reference.key}}}]
    served: set[str] = set()
    for x in cands:
        if x.chosen is None:
            continue
        name = k8s_name(x.listed.id)
        model_id, sha = x.chosen.model_id or x.listed.id, x.chosen.sha or x.sha
        if model_id in served:  # a variant listed on its own and chosen for its base
            continue
        served.add(model_id)
        spec = deployment_spec(model_id, sha, c, x.chosen.quantization, x.listed.gated,
                               x.chosen.file)
        docs.append({
            "apiVersion": "slam.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "annotations": {
                "slam.dev/discovered": x.rank_reason,
                "slam.dev/license": x.listed.license or "not stated"}},
            "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True,
                                    exclude_defaults=True)
            | {"model": {"id": model_id, **({"revision": sha} if sha else {}),
                         **({"file": x.chosen.file} if x.chosen.file else {})}},
        })
        targets.append({"name": name, "modelDeploymentRef": {"name": name}})
    docs.append({
        "apiVersion": "slam.dev/v1alpha1", "kind": "Evaluation",
        "metadata": {"name": evaluation},
        "spec": {"promptSet": {"file": prompt_set}, "reference": "reference",
                 "targets": targets, "scorers": {"judge": {"target": "reference"}}},
    })
    return docs


@dataclass
class Found:
    """What a discovery found: ranked candidates, what was ruled out and why, and anything
    that kept the answer partial."""

    candidates: list[Candidate] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def discover(c: Criteria, *, endpoint: str, token: str | None = None, timeout: float = 10.0,
             on_step: Callable[[str], None] = lambda _: None) -> Found:
    """Ask the Hub at `endpoint`; never raises for the Hub's errors: a listing that fails
    part-way keeps what it had and says so in `warnings`."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from slam_operator.modeldeployment import gpu

    api = HfApi(endpoint=endpoint, token=token or False)
    found = Found()
    survivors: list[Listed] = []
    looked = 0
    listing = api.list_models(
        pipeline_tag=c.task, search=c.search, sort="downloads", limit=c.scan,
        gated=None if c.gated else False,
        expand=["downloads", "likes", "gated", "safetensors", "gguf", "cardData",
                "pipeline_tag", "tags"])
    try:
        for info in listing:
            looked += 1
            m = Listed.of(info)
            why = screen(m, c)
            if why is None:
                survivors.append(m)
            else:
                found.dropped.append((m.id, why))
            # Each survivor costs lookups: stop listing once there are enough to choose from.
            if len(survivors) >= c.limit * 3:
                break
    except HfHubHTTPError as e:
        code = e.response.status_code if e.response is not None else "?"
        found.warnings.append(
            f"the Hub's model list answered HTTP {code} after {looked} models (retried with "
            "backoff): the candidates below come from those only; run again later for more")
    except Exception as e:  # noqa: BLE001 - timeouts, refused connections: keep what came
        found.warnings.append(
            f"the Hub at {endpoint} stopped answering the model list after {looked} models "
            f"({type(e).__name__}): the candidates below come from those only")
    on_step(f"listed {looked} models, {len(survivors)} pass the filters")
    price = gpu.hourly_cost_usd(c.instance_type, 1)  # what the ModelDeployment's status shows
    cands = []
    for m in survivors:
        outcome = lookup(m.id, token, endpoint, timeout)
        on_step(f"{m.id}: {outcome.message}")
        if outcome.status == "gated" and m.parameters is not None:
            # Without access the commit and config.json stay unknown: the fit uses the
            # listing's parameter count (and the operator's overhead ratio for the KV cache).
            cands.append(Candidate(m, None, options_for(m, c, None), price,
                                   note=outcome.message))
            continue
        if outcome.status != "found":
            cands.append(Candidate(m, None, (), price, note=outcome.message))
            continue
        m = Listed(m.id, m.downloads, m.likes, m.gated or bool(outcome.gated),
                   outcome.license or m.license, outcome.parameters or m.parameters,
                   m.pipeline_tag, m.tags)
        options = options_for(m, c, outcome.shape)
        if c.runtime == "llamacpp" and "gguf" in {t.lower() for t in m.tags}:
            options = gguf_options(m.id, m.parameters, outcome.files, c, outcome.shape, None)
        elif c.variants and m.method is None and not any(o.fits == "True" for o in options):
            options += variants(api, m, c, token, endpoint, timeout, on_step, found,
                                outcome.shape)
        note = "" if options or c.runtime != "llamacpp" else (
            "llamacpp serves GGUF files: no GGUF repository of it was found")
        cands.append(Candidate(m, outcome.sha, options, price, note=note))
    ranked = rank(cands)
    fitting = [x for x in ranked if x.chosen is not None][:c.limit]
    found.candidates = fitting + [x for x in ranked if x.chosen is None]
    return found


def variants(api: object, m: Listed, c: Criteria, token: str | None, endpoint: str,
             timeout: float, on_step: Callable[[str], None], found: Found,
             base_shape: object | None = None) -> tuple[Option, ...]:
    """The most downloaded repositories quantized from `m` (the Hub's
    base_model:quantized:<id> tag) — AWQ and GPTQ for a GPU runtime, GGUF for llamacpp —
    each looked up and fit-checked as its own ModelDeployment would be."""
    from huggingface_hub.errors import HfHubHTTPError


    if c.on_cpu and c.runtime != "llamacpp":
        return ()  # vLLM's CPU backend: the weights as they are
    best: dict[str, object] = {}
    try:
        for info in api.list_models(  # type: ignore[attr-defined]
                filter=f"base_model:quantized:{m.id}", sort="downloads", limit=50,
                expand=["downloads", "tags", "gated"]):
            tags = [t.lower() for t in getattr(info, "tags", None) or ()]
            method = ("gguf" if "gguf" in tags else None) if c.runtime == "llamacpp" \
                else variant_method(tags, info.id)
            if method and method not in best and (c.gated or not getattr(info, "gated", False)):
                best[method] = info
    except HfHubHTTPError as e:
        code = e.response.status_code if e.response is not None else "?"
        found.warnings.append(f"the Hub answered HTTP {code} listing the quantized variants of "
                              f"{m.id}: they were not considered")
        return ()
    out = []
    for method, info in best.items():
        outcome = lookup(info.id, token, endpoint, timeout)  # type: ignore[attr-defined]
        on_step(f"{info.id}: {outcome.message}")  # type: ignore[attr-defined]
        if outcome.status != "found":
            continue
        if method == "gguf":  # a GGUF repository rarely has a config.json: the base's shape
            out += gguf_options(info.id, outcome.parameters or m.parameters,  # type: ignore[attr-defined]
                                outcome.files, c, outcome.shape or base_shape, outcome.sha)
        else:
            out.append(option(m.id, outcome.parameters, c, method, outcome.shape,
                              variant=info.id, sha=outcome.sha))  # type: ignore[attr-defined]
    return tuple(out)


LOOKUP_ATTEMPTS = 4


def lookup(model_id: str, token: str | None, endpoint: str, timeout: float) -> object:
    """The operator's Hub lookup of `main`, tried again with jittered backoff (0.5 s doubling)
    while the Hub is unreachable or answers 429/5xx; the last outcome otherwise."""
    from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_random_exponential

    from slam_operator.modeldeployment import hub

    retrying = Retrying(
        retry=retry_if_result(lambda o: o.status == "unreachable"),
        stop=stop_after_attempt(LOOKUP_ATTEMPTS),
        wait=wait_random_exponential(multiplier=0.5, max=4),
        retry_error_callback=lambda state: state.outcome.result())  # the last outcome
    return retrying(hub.lookup, model_id, "main", token, endpoint, timeout)


def parse_parameters(text: str) -> int:
    """'3B', '500M', '1.5e9' or '135000000' as a parameter count."""
    t = text.strip().upper().replace("_", "").replace(",", "")
    scale = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}.get(t[-1:], 1)
    number = t[:-1] if t[-1:] in "KMBT" else t
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"not a parameter count: {text!r} (e.g. 3B, 500M)") from None
    if value <= 0:
        raise ValueError(f"not a parameter count: {text!r} (must be above 0)")
    return int(value)


def params_text(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


_params = params_text
