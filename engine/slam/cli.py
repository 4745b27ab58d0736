"""`slam`: the command line of the SLaM operator's evaluation engine."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import importlib.resources
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from slam import localrun, localserve, promptsets, report, runner, summary
from slam.api import crdgen, manifests
from slam.api.evaluation import DecisionSpec, Evaluation
from slam.evalplan import PlanError, build, scoring_config
from slam.progress import Bars, LogLines
from slam.scoring import pipeline
from slam.scoring.similarity import EmbeddingModelError
from slam.store import Store, default_url, describe_error, display_url

app = typer.Typer(
    help=(
        "Evaluate open small language models against an incumbent LLM API: quality, latency "
        "and cost. Reads the same ModelDeployment and Evaluation YAML that `kubectl apply` takes."
    ),
    no_args_is_help=True,
    add_completion=False,
    # A traceback's local variables can hold a store URL with its password or an API key.
    pretty_exceptions_show_locals=False,
)
job_app = typer.Typer(help="Entrypoints of the operator's scoring Job.", no_args_is_help=True)
app.add_typer(job_app, name="job")
console = Console()
err = Console(stderr=True)

STORE_HELP = "SQLAlchemy URL of the results store (default: $SLAM_STORE_URL, else SQLite in " \
             "~/.local/share/slam/results.db)."
DEMO_PATH = Path("manifests/examples/local")


def _fail(message: str, code: int = 1) -> typer.Exit:
    for line in message.splitlines():
        err.print(f"[red]error[/red] {line}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def _open_store(url: str, *, field: str = "--store") -> Store:
    """The store, or a one-line error naming the URL (password masked) and what went wrong."""
    try:
        return Store.open(url)
    except Exception as e:  # noqa: BLE001 - any driver or URL error becomes a clear message
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        try:
            shown = display_url(url)
        except Exception:  # noqa: BLE001 - not even a URL
            shown = "(not a SQLAlchemy URL)"
        message = (f"{field}: cannot open the results store {shown}: {type(e).__name__}: "
                   f"{detail.replace(url, shown)[:300]}; expected e.g. "
                   "sqlite:////path/results.db or postgresql://user:password@host:5432/db")
        raise StoreOpenError(message) from None


class StoreOpenError(RuntimeError):
    pass


def _open_store_waiting(url: str, seconds: float) -> Store:
    """The store, waiting up to `seconds` (spec.store.waitSeconds) with backoff while it does
    not answer (a database restarting); other problems (a bad URL) fail at once, and either way
    the error names the field and the URL with its password masked."""
    from sqlalchemy.engine import make_url
    from tenacity import Retrying, retry_if_exception, stop_after_delay

    from slam.writer import WAIT, transient

    def waiting(state) -> None:
        e = state.outcome.exception()
        logging.getLogger("slam.run").warning(
            "the results store %s is not answering (%s); trying again for up to %g s "
            "(spec.store.waitSeconds)", display_url(url),
            describe_error(e, make_url(url).password), seconds)
    try:
        for tried in Retrying(retry=retry_if_exception(transient), wait=WAIT, reraise=True,
                              stop=stop_after_delay(seconds), before_sleep=waiting):
            with tried:
                return Store.open(url)
    except Exception:  # noqa: BLE001 - the last try below says what is wrong, in one line
        pass
    return _open_store(url, field="spec.store.urlSecretRef ($SLAM_STORE_URL)")


def _parse_endpoints(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, url = v.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise _fail(f"--endpoint {v!r}: expected TARGET=http://HOST:PORT/v1")
        out[name] = url
    return out


def _recorded_loader(url: str, wait_seconds: float | None = None
                     ) -> Callable[[Evaluation], promptsets.PromptSet]:
    """Reads the requests the shadow gateway recorded into an Evaluation's run
    (spec.promptSet.recorded) from the results store at `url`."""
    def load(ev: Evaluation) -> promptsets.PromptSet:
        try:
            store = (_open_store(url) if wait_seconds is None
                     else _open_store_waiting(url, wait_seconds))
        except StoreOpenError as e:
            raise promptsets.PromptSetError([f"spec.promptSet.recorded: {e}"]) from None
        try:
            return store.recorded_prompts(ev.metadata.get("name", ""), ev.spec.run_id,
                                          ev.metadata.get("namespace", "") or "")
        finally:
            store.close()
    return load


def _log_progress() -> None:
    """Our progress lines at INFO; the HTTP clients' per-request lines stay out of the log."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("httpx", "httpx2", "openai", "sentence_transformers", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _sigterm_as_interrupt() -> None:
    """SIGTERM (kubectl delete, a CI timeout) stops a run like Ctrl-C: finished records kept."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


@app.command()
def validate(
    paths: list[Path] = typer.Argument(  # noqa: B008 - typer's declaration style
        ..., help="Manifest files or folders (every *.yaml / *.yml below a folder)."
    ),
) -> None:
    """Check manifests against the slam.dev/v1alpha1 schema and rules, without a cluster.

    Applies the same checks as the API server (types, enums, ranges, patterns and cross-field
    rules) and prints every problem with its file, document and field.
    """
    table = Table("Kind", "Name", "File", title="Valid slam.dev objects")
    failed = False
    notes: list[str] = []
    for path in paths:
        try:
            loaded = manifests.load(path)
        except manifests.ManifestError as e:
            failed = True
            for problem in e.problems:
                err.print(f"[red]error[/red] {problem}", highlight=False)
            continue
        for obj in [*loaded.model_deployments, *loaded.evaluations]:
            table.add_row(obj.kind, obj.metadata.get("name", "?"), str(loaded.source_of(obj)))
        for ev in loaded.evaluations:
            notes.append(_plan_note(loaded, ev))
        for skipped in loaded.skipped:
            err.print(f"skipped {skipped}: not Kubernetes objects (a data file?)", highlight=False)
    if table.rows:
        console.print(table)
    for note in notes:
        console.print(note, highlight=False, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def _plan_note(loaded: manifests.Manifests, ev: Evaluation) -> str:
    """One line: what the decision's primary evidence needs, and what the prompt set has."""
    name = ev.metadata.get("name", "?")
    dspec = ev.spec.decision or DecisionSpec()
    kind = "humanWinRate" if dspec.evidence == "auto" else dspec.evidence
    try:
        prompts = len(localrun.load_prompts(loaded, ev, loaded.source_of(ev)).prompts)
    except localrun.RunSetupError:
        prompts = 0
    row = next(r for r in summary.plan_for_spec(ev.spec, prompts) if r.evidence == kind)
    return f"Evaluation {name}: {row.line()}. Every kind of evidence: slam plan"


@app.command()
def discover(
    task: str = typer.Option("text-generation", help="The Hub's pipeline tag to list."),
    search: str | None = typer.Option(None, help="Only model ids containing this text."),
    max_params: str | None = typer.Option(
        None, "--max-params", help="Largest parameter count, e.g. 3B or 500M (models whose "
        "count the Hub does not state are left out)."),
    license_: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], "--license", help="Allowed licence, as the Hub names it (repeat for several; "
        "default: any)."),
    min_downloads: int = typer.Option(0, min=0, help="Fewest downloads (last 30 days)."),
    min_likes: int = typer.Option(0, min=0, help="Fewest likes."),
    gated: bool = typer.Option(False, help="Include gated models (they need an HF token)."),
    runtime: str = typer.Option(
        "vllm", help="Runtime the ModelDeployments use: vllm, tgi or sglang on a GPU instance "
        "type; llamacpp (GGUF files) or vllm (its CPU backend) on a CPU one."),
    instance_type: str = typer.Option(
        "g5.xlarge", help="EKS instance type to fit: its GPU memory, or for a CPU type "
        "(c7i.xlarge, ...) the memory its pod can have."),
    gguf: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], help="llamacpp: GGUF quantization types to try, in order (default Q4_K_M, "
        "Q5_K_M, Q8_0)."),
    gpus: int = typer.Option(1, min=1, help="GPUs per replica."),
    quantization: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], help="Quantization to try when the weights as they are do not fit (repeat, in "
        "order: fp8; with sglang or tgi bitsandbytes; with tgi also bitsandbytes-nf4, eetq)."),
    variants: bool = typer.Option(
        True, help="When a model fits in none of those ways, look for AWQ and GPTQ "
        "repositories quantized from it (the Hub's base_model:quantized tag)."),
    limit: int = typer.Option(5, min=1, help="Candidates to write."),
    out: Path | None = typer.Option(  # noqa: B008 - typer's declaration style
        None, help="Folder to write the manifests to (default: only print the table)."),
    evaluation: str = typer.Option("discovered", help="Name of the written Evaluation."),
    prompt_set: str = typer.Option(
        "prompts.yaml", help="The Evaluation's spec.promptSet.file (relative to --out)."),
    reference_model: str = typer.Option("gpt-4", help="The API model to compare with."),
    reference_base_url: str = typer.Option(
        "https://api.openai.com/v1", help="Its OpenAI-compatible base URL."),
) -> None:
    """Find candidate open models on the Hugging Face Hub and write the manifests to test them.

    Lists the Hub's most downloaded models for the task (HF_ENDPOINT chooses the Hub; HF_TOKEN
    is sent when set), keeps those that pass the filters, checks each against the instance
    type's GPU memory with the operator's own fit check, prints the table, and with --out
    writes a ModelDeployment per fitting candidate and an Evaluation against the reference.
    """
    from pydantic import ValidationError

    from slam import discover as disc

    problems = []
    try:
        max_parameters = disc.parse_parameters(max_params) if max_params else None
    except ValueError as e:
        problems.append(f"--max-params: {e}")
        max_parameters = None
    from slam.pricing import INSTANCE_TYPES

    it = INSTANCE_TYPES.get(instance_type)
    if it is None:
        problems.append(f"--instance-type {instance_type}: not in the price table; one of "
                        f"{', '.join(sorted(INSTANCE_TYPES))}")
    if runtime not in ("vllm", "tgi", "sglang", "llamacpp"):
        problems.append(f"--runtime {runtime}: one of vllm, tgi, sglang, llamacpp")
    elif it is not None and it.gpus == 0 and runtime in ("tgi", "sglang"):
        problems.append(f"--runtime {runtime}: {instance_type} has no GPU; on a CPU instance "
                        "type use llamacpp or vllm (its CPU backend)")
    elif it is not None and it.gpus > 0 and runtime == "llamacpp":
        problems.append(f"--runtime llamacpp: runs on CPU instance types (e.g. c7i.xlarge), "
                        f"not {instance_type}")
    for q in quantization:
        if it is not None and it.gpus == 0:
            problems.append(f"--quantization {q}: on a CPU instance type the weights are "
                            "served as they are (vllm) or as GGUF files (llamacpp, --gguf)")
            continue
        if q not in disc.ON_THE_FLY:
            problems.append(f"--quantization {q}: discovery tries the quantizations a runtime "
                            f"applies to the weights as they are: {', '.join(disc.ON_THE_FLY)}")
            continue
        try:
            disc.deployment_spec("org/model", None, disc.Criteria(runtime=runtime), q)
        except ValidationError as e:
            problems.append(f"--quantization {q}: {e.errors()[0]['msg']}")
    from slam_operator.modeldeployment.gpu import GGUF_BITS

    for kind in gguf:
        if kind.upper() not in GGUF_BITS:
            problems.append(f"--gguf {kind}: one of {', '.join(GGUF_BITS)}")
    if problems:
        raise _fail("\n".join(problems), 2)
    criteria = disc.Criteria(
        task=task, search=search, max_parameters=max_parameters, licenses=tuple(license_),
        min_downloads=min_downloads, min_likes=min_likes, gated=gated, runtime=runtime,
        instance_type=instance_type, gpus=gpus, quantizations=(None, *quantization),
        variants=variants, limit=limit,
        **({"gguf_files": tuple(k.upper() for k in gguf)} if gguf else {}))
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    with err.status("asking the Hub…") as status:
        found = disc.discover(criteria, endpoint=endpoint, token=os.environ.get("HF_TOKEN"),
                              on_step=lambda line: status.update(line))
    on = (f"{gpus} GPU" if not criteria.on_cpu else
          f"CPU, {it.pod_memory_gib} GiB per pod" if it else "?")
    table = Table("Model", "Parameters", "Licence", "Downloads",
                  "Memory" if criteria.on_cpu else "GPU memory", "Fits", "$/hour", "Rank",
                  title=f"Candidates on {instance_type} ({on}, {runtime})")
    for x in found.candidates:
        mem = "; ".join(f"{o.label} ~{o.total_gib:.1f} GiB"
                        for o in x.options if o.total_gib is not None) or "?"
        fit = ", ".join(f"{o.label}: {o.fits}" for o in x.options) or "?"
        table.add_row(x.listed.id,
                      disc.params_text(x.listed.parameters),
                      x.listed.license or "?", f"{x.listed.downloads:,}", mem, fit,
                      f"{x.hourly_usd:.3f}" if x.hourly_usd is not None else "?",
                      x.rank_reason)
    console.print(table)
    for model, why in found.dropped:
        err.print(f"left out {model}: {why}", highlight=False)
    for warning in found.warnings:
        err.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
    fitting = [x for x in found.candidates if x.chosen is not None]
    if out is None:
        console.print(f"{len(fitting)} candidate(s) fit; pass --out DIR to write their "
                      "manifests", highlight=False)
        return
    if not fitting:
        raise _fail("no candidate fits: nothing written (see the table for why)")
    import yaml

    docs = disc.manifests(fitting, criteria, evaluation=evaluation, prompt_set=prompt_set,
                          reference=disc.Reference(model=reference_model,
                                                   base_url=reference_base_url))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for doc in docs:
        path = out / f"{doc['kind'].lower()}-{doc['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        written.append(path)
    console.print(f"wrote {len(written)} manifests to {out}: " +
                  ", ".join(p.name for p in written), highlight=False, soft_wrap=True)
    if not (out / prompt_set).exists():
        console.print(f"next: put the feature's prompts in {out / prompt_set}, create the "
                      "Secret openai-api-key (key api-key), then `slam validate` and "
                      "`kubectl apply -f` the folder", highlight=False, soft_wrap=True)


@app.command("import")
def import_cmd(
    logs: Path = typer.Argument(  # noqa: B008 - typer's declaration style
        ..., help="JSONL file of chat-completion requests, one per line (bodies, logged "
        "request/response pairs, or OpenAI Batch API input)."),
    out: Path = typer.Option(  # noqa: B008 - typer's declaration style
        ..., "--out", "-o", help="Prompt-set file to write (.yaml, or .jsonl)."),
    name: str | None = typer.Option(None, help="The prompt set's name (default: the file's)."),
    model: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], help="Only requests to this model (repeat for several; default: all)."),
    sample: int | None = typer.Option(
        None, min=1, help="Keep this many distinct requests, drawn at random (--seed)."),
    seed: int = typer.Option(0, help="Seed of the sample: the same seed draws the same prompts."),
    responses: Path | None = typer.Option(  # noqa: B008 - typer's declaration style
        None, help="OpenAI Batch API output file: its answers become reference answers, "
        "joined by custom_id."),
    redact: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], help="Also redact NAME=REGEX (repeat); matches become [NAME]."),
    builtin: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], help="Built-in detectors to run (repeat; default all: email, iban, card, phone)."),
    phone_region: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], help="Regions whose national phone formats are recognised (repeat; default: 29 "
        "common ones; +country numbers are found anyway)."),
    id_prefix: str = typer.Option("p", help="Prefix of the prompt ids (p-<hash of the "
                                  "request>)."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
) -> None:
    """Turn a feature's logged API requests into a prompt set: redacted, deduplicated, sampled.

    Personal data (e-mail addresses, phone numbers, card numbers, IBANs and your own patterns)
    is replaced before anything is written; the incumbent's answers, where logged, become
    reference answers. Prints what was left out and why, with the lines it was on.
    """
    import re

    from slam import logimport
    from slam.api.evaluation import PROMPT_ID
    from slam.redact import BUILTINS, DEFAULT_PHONE_REGIONS, RedactionError, Redactor, label

    try:
        redactor = Redactor.build(redact, builtins=builtin or BUILTINS,
                                  phone_regions=phone_region or DEFAULT_PHONE_REGIONS)
    except RedactionError as e:
        raise _fail(str(e)) from None
    if not re.match(PROMPT_ID, id_prefix):
        raise _fail(f"--id-prefix {id_prefix!r}: start with a letter or digit; then letters, "
                    "digits, '.', '_', ':' or '-'")
    if out.suffix not in (".yaml", ".yml", ".jsonl"):
        raise _fail(f"--out {out}: name a .yaml or .jsonl file")
    if out.exists() and not force:
        raise _fail(f"--out {out}: exists; pass --force to replace it")
    try:
        text = logs.read_text(encoding="utf-8")
    except OSError as e:
        raise _fail(f"{logs}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise _fail(f"{logs}: not UTF-8 text (byte {e.start}); export the logs as UTF-8 "
                    "JSONL") from None
    try:
        joined = logimport.read_responses(responses) if responses else None
    except logimport.LogImportError as e:
        raise _fail(str(e)) from None
    prompts, result = logimport.import_logs(
        text.splitlines(), logs.name, redactor, models=model, sample=sample, seed=seed,
        responses=joined, id_prefix=id_prefix)
    rows = result.rows()
    if rows:
        table = Table("Left out", "Requests", "Lines", title=f"{logs.name}: {result.read} read")
        for reason, count, lines in rows:
            table.add_row(reason, str(count), lines)
        console.print(table)
    if result.answer_errors:
        console.print(f"{result.answer_errors} logged answer(s) were errors: those prompts "
                      "have no reference answer from them", highlight=False)
    if not prompts:
        raise _fail(f"{logs}: no request could be used; nothing written (see the table)")
    out.parent.mkdir(parents=True, exist_ok=True)
    body = logimport.render(prompts, result, name or out.stem, out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(out)
    redacted = ", ".join(f"{n} {label(k)}" for k, n in sorted(result.redacted.items()))
    console.print(f"wrote {out}: {result.kept} prompts ({result.with_references} with reference "
                  f"answers); redacted: {redacted or 'nothing found'}", highlight=False,
                  soft_wrap=True)


@app.command("gateway")
def gateway_cmd(
    upstream: str = typer.Option(
        ..., help="The incumbent API's origin, e.g. https://api.openai.com: the feature's "
        "base URL becomes http://GATEWAY/v1 and every path is forwarded unchanged."),
    evaluation: str = typer.Option(
        ..., "--evaluation", "-e", help="The Evaluation the sampled traffic is recorded for."),
    run_id: str = typer.Option(
        ..., "--run-id", help="The run that collects it (the Evaluation's spec.runId)."),
    namespace: str = typer.Option("", "--namespace", "-n", help="The Evaluation's namespace."),
    incumbent: str = typer.Option(
        "incumbent", help="Name of the incumbent's target in the run (the reference)."),
    store_url: str | None = typer.Option(None, "--store", help=STORE_HELP),
    host: str = typer.Option("0.0.0.0", help="Address to listen on."),
    port: int = typer.Option(8080, min=0, max=65535, help="Port the feature calls."),
    metrics_port: int = typer.Option(9091, min=0, max=65535,
                                     help="Port of /metrics and /healthz."),
    sample_rate: float = typer.Option(0.1, min=0.0, max=1.0,
                                      help="Share of eligible requests recorded."),
    daily_cap: int | None = typer.Option(None, min=0,
                                         help="At most this many recorded a day (UTC)."),
    route: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], help="Paths whose requests may be recorded (repeat; default /v1/chat/completions)."),
    model: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], help="Only requests to this model (repeat; default: all)."),
    user: str | None = typer.Option(
        None, help="Only requests whose `user` field matches this regular expression."),
    exclude_user: str | None = typer.Option(
        None, help="Never requests whose `user` field matches this regular expression."),
    redact: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], help="Also redact NAME=REGEX (repeat); matches become [NAME]."),
    phone_region: list[str] = typer.Option(  # noqa: B008 - typer's declaration style
        [], help="Regions whose national phone formats are recognised (repeat)."),
    queue_size: int = typer.Option(1000, min=1, help="Sampled requests that may wait to be "
                                   "written; beyond it they are dropped (and counted)."),
    shutdown_timeout: float = typer.Option(
        30.0, min=0.0, help="On SIGTERM: seconds in-flight answers get to finish."),
    workers: int | None = typer.Option(
        None, min=1, max=256, help="Cores the request path may use at once (its GOMAXPROCS, "
        "at least 2 as Go's own default under a CPU limit; default: the cores the container's "
        "CPU limit allows)."),
) -> None:
    """Run the shadow gateway: forward every request to the incumbent unchanged and record a
    sample of the feature's real traffic, redacted, as a run of an Evaluation.

    The request path is slam-gateway-proxy (Go's ReverseProxy); this process records. The mirror
    path never slows or fails a request: sampled exchanges wait on a bounded queue and are
    written in batches; a full queue or a store that is down drops them, counted in the
    metrics (slam_gateway_requests_dropped_total by reason).
    """
    import re

    from slam import gateway as gw
    from slam.redact import DEFAULT_PHONE_REGIONS, RedactionError, Redactor

    _log_progress()
    problems = []
    try:
        redactor = Redactor.build(redact, phone_regions=phone_region or DEFAULT_PHONE_REGIONS)
    except RedactionError as e:
        problems.append(str(e))
    patterns = {}
    for option, value in (("--user", user), ("--exclude-user", exclude_user)):
        try:
            patterns[option] = re.compile(value) if value else None
        except re.error as e:
            problems.append(f"{option}: not a valid regular expression ({e})")
    if not re.match(r"^https?://[^/]+", upstream):
        problems.append(f"--upstream {upstream!r}: an http(s) origin, e.g. "
                        "https://api.openai.com")
    bad_routes = [r for r in route if not r.startswith("/")]
    if bad_routes:
        problems.append(f"--route {bad_routes[0]!r}: a path starting with /, e.g. "
                        "/v1/chat/completions")
    if problems:
        for problem in problems:
            err.print(f"[red]error[/red] {problem}", highlight=False)
        raise typer.Exit(1)
    sampling = gw.Sampling(rate=sample_rate, daily_cap=daily_cap,
                           routes=tuple(route) or (gw.CHAT_ROUTE,), models=tuple(model),
                           users=patterns["--user"], exclude_users=patterns["--exclude-user"])
    url = store_url or default_url()
    recording = gw.Recording(store_url=url, evaluation=evaluation, run_id=run_id,
                             namespace=namespace, incumbent=incumbent, upstream=upstream,
                             sampling=sampling.describe())
    logging.getLogger("slam.gateway").info(
        "recording %.0f%% of %s into %s, run %s of %s", sample_rate * 100,
        ", ".join(sampling.routes), display_url(url), run_id, evaluation)
    try:
        code = asyncio.run(gw.run(
            upstream=upstream, sampling=sampling, recording=recording, redactor=redactor,
            host=host, port=port, metrics_port=metrics_port, queue_size=queue_size,
            shutdown_timeout=shutdown_timeout, workers=workers))
    except gw.GatewayError as e:
        err.print(f"[red]error[/red] {e}", highlight=False)
        raise typer.Exit(1) from None
    if code:
        raise typer.Exit(code)


@app.command("plan")
def plan_cmd(
    path: Path = typer.Argument(..., help="Manifest file or folder with the Evaluation."),  # noqa: B008
    evaluation: str | None = typer.Option(None, "--evaluation", "-e",
                                          help="Which Evaluation, if the path has several."),
) -> None:
    """How many prompts (and human ratings) the decision needs before any money is spent.

    For each kind of evidence in spec.decision: the prompts needed for the planned power at the
    non-inferiority margin, for the assumed true quality, at alpha split over the candidates
    (Holm's first step), and the power the Evaluation's prompt set gives.
    """
    try:
        loaded = manifests.load(path)
        ev = localrun.pick_evaluation(loaded, evaluation)
        prompts = localrun.load_prompts(loaded, ev, loaded.source_of(ev))
    except manifests.ManifestError as e:
        raise _fail(str(e)) from None
    except localrun.RunSetupError as e:
        raise _fail(str(e)) from None
    dspec = ev.spec.decision or DecisionSpec()
    samples = ev.spec.generation.samples_per_prompt if ev.spec.generation else 1
    n = len(ev.spec.targets) - 1
    console.print(
        f"Evaluation {ev.metadata.get('name', '?')}: {len(prompts.prompts)} prompts × {samples} "
        f"sample(s), {n} candidate(s) against {ev.spec.reference}; alpha {dspec.alpha:g} "
        f"family-wise, power {dspec.power:.0%}; decision on "
        f"{'the first evidence with data' if dspec.evidence == 'auto' else dspec.evidence}",
        highlight=False, soft_wrap=True)
    for row in summary.plan_for_spec(ev.spec, len(prompts.prompts)):
        console.print(f"- {row.line()}", highlight=False, soft_wrap=True)


@app.command()
def crds(
    directory: Path = typer.Argument(Path("crds"), help="Where the CRD YAML files go."),  # noqa: B008
    check: bool = typer.Option(False, "--check", help="Only check that the files are current."),
) -> None:
    """Write the CustomResourceDefinitions generated from the typed API models."""
    args = [str(directory)] + (["--check"] if check else [])
    raise typer.Exit(crdgen.main(args))


def print_summary(store: Store, run_pk: int) -> list[str]:
    """Print the report's tables and the failures; returns the targets where every request
    failed."""
    rep = summary.build(store, run_pk)
    # A pipe or CI log is 80 columns by default: too narrow for the tables.
    out = Console(width=max(console.width, 140) if not console.is_terminal else None)
    for title, fn in report.TABLES:
        headers, rows = report.drop_empty_columns(*fn(rep))
        table = Table(*headers, title=f"{rep.evaluation} run {rep.run_id}: {title}")
        for row in rows:
            table.add_row(*row)
        out.print(table)
    if rep.rank_basis:
        out.print(f"Ranked by {rep.rank_basis}.", highlight=False)
    for line in report.capacity_headlines(rep):
        out.print(line, highlight=False, soft_wrap=True)
    if rep.judge_unparseable or rep.judge_errors:
        out.print(f"Judge: {rep.judge_unparseable} unparseable verdict(s), {rep.judge_errors} "
                  "failed call(s) (raw replies are in the store; excluded above).",
                  highlight=False)
    failures: dict[tuple[str, str], list[dict]] = {}
    for r in store.responses(run_pk):
        if r["error_class"]:
            failures.setdefault((r["target"], r["error_class"]), []).append(r)
    for (target, cls), rows in sorted(failures.items()):
        out.print(f"[red]failed[/red] {target}: {len(rows)} × {cls}, e.g. "
                  f"{rows[0]['prompt_id']}: {rows[0]['error_message']}", highlight=False)
    for note in rep.notes:
        out.print(f"[yellow]warning[/yellow] {note}", highlight=False)
    out.print(f"[bold]Recommendation: {rep.leader}[/bold] — {rep.reason}", highlight=False)
    return [t.target for t in rep.targets if t.requests and not t.succeeded]


@app.command()
def run(
    path: Path = typer.Argument(..., help="Manifest file or folder: ModelDeployments and an "  # noqa: B008
                                          "Evaluation, as for `kubectl apply`."),
    evaluation: str | None = typer.Option(None, "--evaluation", "-e",
                                          help="Which Evaluation, if the path has several."),
    store_url: str | None = typer.Option(None, "--store", help=STORE_HELP),
    endpoint: list[str] = typer.Option(  # noqa: B008
        [], "--endpoint",
        help="TARGET=URL: use a running OpenAI-compatible server (…/v1) for a target instead of "
             "serving its ModelDeployment here. Repeatable."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Use only the first N prompts."),
    run_id: str | None = typer.Option(None, "--run-id",
                                      help="Run under this id instead of spec.runId."),
    retry_failed: bool = typer.Option(False, "--retry-failed",
                                      help="Send again the requests that ended in an error."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Draw progress bars."),
    gate: str | None = typer.Option(
        None, "--gate", metavar="CANDIDATE",
        help="Exit 3 with one line unless the decision for CANDIDATE is non-inferior (CI)."),
    max_failure_rate: float | None = typer.Option(
        None, "--max-failure-rate", min=0, max=1,
        help="With --gate: also exit 3 when a target failed more than this share of requests."),
) -> None:
    """Run an evaluation on this machine and print a summary per target.

    `llamacpp` ModelDeployments are served here by llama.cpp on loopback, from GGUF files that
    are already on disk ($SLAM_MODEL_DIR or the demo's PyPI packages); other targets need
    --endpoint or, for external APIs, their key in the environment variable the error names.
    Results go to the store as they arrive: run the same command again after an interruption
    and it resumes where it stopped, without repeating or losing a request.
    """
    url = store_url or default_url()
    try:
        prepared = localrun.prepare(path, evaluation_name=evaluation,
                                    endpoints=_parse_endpoints(endpoint), limit=limit,
                                    run_id=run_id, recorded=_recorded_loader(url))
    except localrun.RunSetupError as e:
        raise _fail(str(e)) from None
    try:
        store = _open_store(url)
    except StoreOpenError as e:
        raise _fail(str(e)) from None
    _sigterm_as_interrupt()
    ev = prepared.evaluation
    if gate:  # checked before any request is paid for
        ev_candidates = [t.name for t in ev.spec.targets if t.name != ev.spec.reference]
        if gate not in ev_candidates:
            raise _fail(f"--gate {gate}: not a candidate of {ev.metadata.get('name')} "
                        f"(candidates: {', '.join(ev_candidates)})", 2)
    try:
        with localserve.serve(prepared.serve_locally) as servers:
            for s in servers.values():
                err.print(f"serving {s.name} ({s.served_name}) with llama.cpp at {s.base_url}",
                          highlight=False)
            plan = prepared.plan_for(localrun.local_endpoints(ev, servers))
            err.print(
                f"evaluation {plan.evaluation} run {plan.run_id}: {len(plan.prompts.prompts)} "
                f"prompts × {plan.samples} sample(s) × {len(plan.targets)} targets; "
                f"store {display_url(url)}", highlight=False)
            cfg = prepared.scoring_for(plan)
            # A server that dies mid-run is reported as such, not as a column of StreamCuts.
            down = localserve.watchdog(servers, localrun.local_targets(ev, servers))
            fix = "; run the same command again: it asks only for those"
            if progress:
                with Bars(err) as listener:
                    result, scored = _generate_and_score(plan, store, cfg, listener, fix,
                                                         _fail, retry_failed, down)
            else:
                # Not a terminal (CI, a pipe): a progress line per target every 10 s instead.
                _log_progress()
                result, scored = _generate_and_score(plan, store, cfg, LogLines(), fix, _fail,
                                                     retry_failed, down)
    except localserve.LocalServeError as e:
        raise _fail(str(e)) from None
    except runner.StoreError as e:
        raise _fail(f"{e}; what was stored is kept: run the same command again to resume") \
            from None
    except KeyboardInterrupt:
        err.print("interrupted: finished requests are stored; run the same command to resume")
        raise typer.Exit(130) from None
    dead = print_summary(store, result.run_pk)
    err.print(
        f"{len(result.records)} requests sent ({result.failed} failed), {result.skipped} already "
        f"stored, in {result.seconds:.1f} s; scored {scored.similarity_scored} for similarity "
        f"({scored.texts_encoded} texts encoded), {scored.judgments} judge verdicts, "
        f"{scored.grades} grades. Results: {display_url(url)}\n"
        f"Export: slam report -e {plan.evaluation} --format md|json|csv|junit"
        + (f" --store '{display_url(url)}'" if store_url else ""), highlight=False)
    if dead:
        raise _fail(f"every request to {', '.join(dead)} failed (see the lines above): check "
                    "the endpoint, the model name and the API key, then run the same command "
                    "with --retry-failed")
    _apply_gate(summary.build(store, result.run_pk) if gate else None, gate, max_failure_rate)


def _generate_and_score(plan: runner.RunPlan, store: Store, cfg: pipeline.ScoringConfig, listener,
                        missing_fix: str, fail: Callable[[str], typer.Exit],
                        retry_failed: bool, down=None
                        ) -> tuple[runner.RunResult, pipeline.ScoringResult]:
    """The sequence `slam run` and `slam job run` share, after their own planning: send what
    the store does not hold yet, stop (exit 1 through `fail`, naming the count and then
    `missing_fix`) when an answer received is not in the store (the end-of-run invariant: stored
    = received, nothing received twice), then score what was stored."""
    result = runner.run(plan, store, retry_failed=retry_failed, listener=listener, down=down)
    if not result.invariant.ok:
        raise fail(f"{result.invariant.message()}{missing_fix}")
    done, _, total = store.progress(result.run_pk)
    if done >= total and runner.capacity_targets(plan):
        # After generation, before scoring: the search measures each self-hosted target alone.
        asyncio.run(runner.search_capacity(plan, store, result.run_pk, listener))
    if cfg.similarity_model:
        err.print(f"scoring similarity with {cfg.similarity_model}", highlight=False)
    try:
        scored = asyncio.run(pipeline.score(store, result.run_pk, cfg, listener.task))
    except EmbeddingModelError as e:
        raise fail(str(e)) from None
    return result, scored


def _store_and_evaluation(store_url: str | None, evaluation: str | None, namespace: str
                          ) -> tuple[str, Store, str, str]:
    """The store (--store, else the default) and the evaluation: the one named, else the most
    recent run's."""
    url = store_url or default_url()
    try:
        store = _open_store(url)
    except StoreOpenError as e:
        raise _fail(str(e)) from None
    if evaluation is None:
        runs = store.runs()
        if not runs:
            raise _fail(f"the store {display_url(url)} holds no runs yet; start one with slam run")
        evaluation, namespace = runs[-1].evaluation, runs[-1].namespace
    return url, store, evaluation, namespace


@app.command("report")
def report_cmd(
    evaluation: str | None = typer.Option(
        None, "--evaluation", "-e", help="Evaluation name (default: the most recent run's)."),
    run_id: str | None = typer.Option(None, "--run", help="Run id (default: the latest)."),
    namespace: str = typer.Option("", "--namespace", "-n",
                                  help="Namespace of the Evaluation (cluster runs)."),
    fmt: str = typer.Option("md", "--format", "-f",
                            help="md (summary), json (summary and records), csv (records) or "
                                 "junit (the decisions as JUnit XML, for CI)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write here instead of stdout."),  # noqa: B008
    store_url: str | None = typer.Option(None, "--store", help=STORE_HELP),
    gate: str | None = typer.Option(
        None, "--gate", metavar="CANDIDATE",
        help="Exit 3 with one line unless the decision for CANDIDATE is non-inferior (CI)."),
    max_failure_rate: float | None = typer.Option(
        None, "--max-failure-rate", min=0, max=1,
        help="With --gate: also exit 3 when a target failed more than this share of requests."),
) -> None:
    """Export a run: Markdown summary, JSON (summary and every record), CSV (records) or JUnit XML
    (decisions). With --gate, exit 3 unless the candidate is non-inferior."""
    if fmt not in ("md", "json", "csv", "junit"):
        raise _fail(f"--format {fmt}: choose one of md, json, csv, junit")
    url, store, evaluation, namespace = _store_and_evaluation(store_url, evaluation, namespace)
    found = store.find_run(evaluation, run_id, namespace)
    if found is None:
        raise _fail(f"no run {run_id or ''} of evaluation {evaluation} in {display_url(url)}")
    responses = store.responses(found.id)
    rep = summary.build(store, found.id) if fmt != "csv" or gate else None
    if gate:
        try:
            summary.gate(rep, gate)
        except KeyError as e:
            raise _fail(f"--gate {e.args[0]}", 2) from None
    if fmt == "csv":
        text = report.to_csv(responses)
    elif fmt == "junit":
        text = report.to_junit(rep, max_failure_rate)
    else:
        text = report.to_markdown(rep, display_url(url), responses) if fmt == "md" \
            else report.to_json(rep, responses)
    if out:
        out.write_text(text)
        err.print(f"wrote {out}", highlight=False)
    else:
        sys.stdout.write(text)
    _apply_gate(rep, gate, max_failure_rate)


@app.command("compare")
def compare_cmd(
    run_a: str = typer.Argument(..., help="The earlier run's id (spec.runId)."),
    run_b: str = typer.Argument(..., help="The later run's id."),
    evaluation: str | None = typer.Option(
        None, "--evaluation", "-e", help="Evaluation name (default: the most recent run's)."),
    namespace: str = typer.Option("", "--namespace", "-n",
                                  help="Namespace of the Evaluation (cluster runs)."),
    fmt: str = typer.Option("md", "--format", "-f", help="md or json."),
    top: int = typer.Option(10, "--top", min=0, help="Largest per-prompt drops to list."),
    store_url: str | None = typer.Option(None, "--store", help=STORE_HELP),
) -> None:
    """What changed between two runs of one Evaluation (e.g. a new model version): per target,
    quality paired by prompt with intervals, latency, cost and the decision, and the prompts
    that dropped most."""
    if fmt not in ("md", "json"):
        raise _fail(f"--format {fmt}: choose md or json")
    url, store, evaluation, namespace = _store_and_evaluation(store_url, evaluation, namespace)
    found = []
    for rid in (run_a, run_b):
        run = store.find_run(evaluation, rid, namespace)
        if run is None:
            have = sorted(r.run_id for r in store.runs()
                          if r.evaluation == evaluation and r.namespace == namespace)
            raise _fail(f"no run {rid} of evaluation {evaluation} in {display_url(url)} (runs: "
                        f"{', '.join(have) or 'none'})")
        found.append(summary.load(store, run.id))
    from slam import compare

    result = compare.compare(found[0], found[1], top=top)
    if fmt == "json":
        sys.stdout.write(json.dumps(compare.to_json(result), indent=2) + "\n")
    else:
        sys.stdout.write(compare.to_markdown(result))


def _apply_gate(rep: summary.EvaluationReport | None, gate: str | None,
                max_failure_rate: float | None) -> None:
    """--gate: one line and exit 3 when the candidate is not non-inferior (or a target failed
    too often); one line and exit 0 when it passes."""
    if not gate or rep is None:
        return
    failed = summary.gate(rep, gate, max_failure_rate)
    if failed:
        raise _fail(failed, 3)
    err.print(f"gate passed: {gate} is {rep_decision(rep, gate)}", highlight=False,
              soft_wrap=True)


def rep_decision(rep: summary.EvaluationReport, candidate: str) -> str:
    return next(t.decision.why for t in rep.targets if t.target == candidate and t.decision)


def _termination_message(message: str) -> None:
    """Kubernetes shows /dev/termination-log in the pod status: the operator reports it."""
    path = Path(os.environ.get("SLAM_TERMINATION_LOG", "/dev/termination-log"))
    with contextlib.suppress(OSError):
        path.write_text(message[:4000])


@job_app.command("run")
def job_run(
    evaluation_file: Path | None = typer.Option(  # noqa: B008
        None, "--evaluation-file",
        help="The Evaluation as JSON or YAML (default: $SLAM_EVALUATION, JSON)."),
    store_url: str | None = typer.Option(None, "--store", help=STORE_HELP),
    shards: int = typer.Option(
        1, "--shards", min=1, envvar="SLAM_SHARDS",
        help="Shards of the prompt set (Indexed Job completions; default $SLAM_SHARDS)."),
    shard: int = typer.Option(
        0, "--shard", min=0, envvar="JOB_COMPLETION_INDEX",
        help="This pod's shard (default $JOB_COMPLETION_INDEX)."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", envvar="SLAM_RETRY_FAILED",
        help="Send again the requests that ended in an error (an Evaluation's "
             "slam.dev/retry annotation sets it)."),
) -> None:
    """Generate one evaluation run (or one shard of it) into the store: the scoring Job's command.

    Endpoints of ModelDeployment targets come from $SLAM_ENDPOINTS (JSON, target -> …/v1 URL),
    API keys and the store URL from SLAM_SECRET_* variables (the Job's secretKeyRefs). Progress is
    logged every 10 s; on failure the reason goes to the termination log.
    """
    def fail(message: str, code: int = 1) -> typer.Exit:
        """Exit with `message`, which also goes to the termination log (the Job's status)."""
        _termination_message(message)
        return _fail(message, code)

    _log_progress()
    try:
        if evaluation_file:
            import yaml
            raw = yaml.safe_load(evaluation_file.read_text())
        else:
            raw = json.loads(os.environ["SLAM_EVALUATION"])
        ev = Evaluation.model_validate(raw)
        endpoints = json.loads(os.environ.get("SLAM_ENDPOINTS", "{}"))
        details = json.loads(os.environ.get("SLAM_TARGET_DETAILS", "{}"))
        # A ConfigMap prompt set arrives as a mounted file (the Job's spec says so); recorded
        # traffic is read from the store.
        url = store_url or default_url()
        wait = ev.spec.store.wait_seconds if ev.spec.store else 120
        prompts = promptsets.load(ev.spec.prompt_set,
                                  recorded=functools.partial(_recorded_loader(url, wait), ev))
        if shard >= shards:
            raise PlanError(f"--shard {shard} must be below --shards {shards}")
        plan = build(ev, prompts, endpoints=endpoints, shard=(shard, shards), details=details)
        cfg = scoring_config(ev, plan)
        if shards > 1:  # each pod scores the prompts it generated
            cfg = dataclasses.replace(cfg, prompt_ids=frozenset(
                p.id for p in prompts.shard(shard, shards).prompts))
    except (KeyError, ValueError, promptsets.PromptSetError, PlanError) as e:
        raise fail(f"{type(e).__name__}: {e}" if isinstance(e, KeyError) else str(e)) from None
    _sigterm_as_interrupt()
    listener = LogLines()
    try:
        store = _open_store_waiting(url, wait)
    except StoreOpenError as e:
        raise fail(str(e)) from None
    fix = ("; the Job's next pod asks for them again (or: kubectl annotate evaluation "
           f"{plan.evaluation} slam.dev/retry=$(date +%s) --overwrite)")
    try:
        result, _ = _generate_and_score(plan, store, cfg, listener, fix, fail, retry_failed)
    except runner.StoreError as e:
        raise fail(f"{e}; the answers stored are kept and the Job's next pod resumes") from None
    except KeyboardInterrupt:  # SIGTERM: the pod is being deleted or its node drained
        raise fail("stopped by SIGTERM: the answers stored are kept; the Job's next pod resumes",
                   143) from None
    done, failed, total = store.progress(result.run_pk)
    logging.getLogger("slam.run").info(
        "shard %d/%d finished: %d sent (%d failed), %d already stored; run %d/%d done",
        shard, shards, len(result.records), result.failed, result.skipped, done, total)


@app.command()
def dashboard(
    store_url: str | None = typer.Option(None, "--store", help=STORE_HELP),
    port: int = typer.Option(8501, "--port", help="Port to serve on."),
    address: str = typer.Option("127.0.0.1", "--address",
                                help="Address to serve on (0.0.0.0 in a container)."),
) -> None:
    """Open the dashboard (Streamlit) on a store: blind rating for raters, decision pages for
    admins. Invite tokens come from $SLAM_RATER_TOKENS / $SLAM_ADMIN_TOKENS (comma-separated
    name=token entries: a token belongs to one person); without them one admin and one rater
    token are made up and printed here. Behind an authenticating proxy, $SLAM_AUTH_USER_HEADER
    names the header with the user instead."""
    import secrets as token_source
    from importlib.util import find_spec

    from slam_dashboard import auth

    if find_spec("streamlit") is None:
        raise _fail("the dashboard needs Streamlit, which this installation leaves out: install "
                    "slam-operator[dashboard], or run the slam-dashboard image (the operator "
                    "image carries only the operator and the CLI)", 2)

    env = dict(os.environ)
    env["SLAM_STORE_URL"] = store_url or default_url()
    if not any(env.get(v, "").strip() for v in (auth.ADMIN_VAR, auth.RATER_VAR, auth.HEADER_VAR)):
        admin, rater = token_source.token_urlsafe(12), token_source.token_urlsafe(12)
        env[auth.ADMIN_VAR], env[auth.RATER_VAR] = f"owner={admin}", f"rater={rater}"
        err.print(f"admin invite token for 'owner' (this session only): {admin}\n"
                  f"rater invite token for 'rater' (this session only): {rater}",
                  highlight=False)
    if problems := auth.config_problems(env):
        raise _fail("; ".join(problems), 2)
    # Inside the installed package (the image installs a wheel, not this source tree).
    app_path = Path(str(importlib.resources.files("slam_dashboard") / "app.py"))
    err.print(f"dashboard {app_path} on http://{address}:{port} for "
              f"{display_url(env['SLAM_STORE_URL'])} (Ctrl-C stops it)", highlight=False,
              soft_wrap=True)
    sys.stderr.flush()
    # Streamlit takes this process's place, so Ctrl-C, SIGTERM and exit codes reach it directly.
    os.execve(sys.executable, [
        sys.executable, "-m", "streamlit", "run", str(app_path), "--server.port", str(port),
        "--server.address", address, "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"], env)


@app.command()
def demo(
    path: Path = typer.Argument(DEMO_PATH, help="The local example to run."),  # noqa: B008
    store_url: str | None = typer.Option(None, "--store", help=STORE_HELP),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Use only the first N prompts."),
) -> None:
    """Run the local example: SmolLM2-135M vs Gemma 3 270M on llama.cpp, results in SQLite."""
    run(path, evaluation=None, store_url=store_url, endpoint=[], limit=limit, run_id=None,
        retry_failed=False, progress=sys.stderr.isatty(), gate=None, max_failure_rate=None)
    console.print(
        "\nNext: [bold]make dashboard[/bold] opens these results in the dashboard (rate the "
        "answers blind, see the leaderboard); [bold]slam report --format md[/bold] (or json, "
        "csv) exports them; [bold]make demo[/bold] again reuses what is stored.",
        highlight=False)


if __name__ == "__main__":
    app()
