"""`slam`: the command line of the SLaM operator's evaluation engine."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from slam.api import crdgen, manifests

app = typer.Typer(
    help=(
        "Evaluate open small language models against an incumbent LLM API: quality, latency "
        "and cost. Reads the same ModelDeployment and Evaluation YAML that `kubectl apply` takes."
    ),
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)


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
        for skipped in loaded.skipped:
            err.print(f"skipped {skipped}: not Kubernetes objects (a data file?)", highlight=False)
    if table.rows:
        console.print(table)
    if failed:
        raise typer.Exit(1)


@app.command()
def crds(
    directory: Path = typer.Argument(Path("crds"), help="Where the CRD YAML files go."),  # noqa: B008
    check: bool = typer.Option(False, "--check", help="Only check that the files are current."),
) -> None:
    """Write the CustomResourceDefinitions generated from the typed API models."""
    args = [str(directory)] + (["--check"] if check else [])
    raise typer.Exit(crdgen.main(args))


@app.command()
def demo(
    path: Path = typer.Argument(  # noqa: B008
        Path("manifests/examples/local"), help="The local example to run."
    ),
) -> None:
    """Run the local example evaluation (two small models on llama.cpp, results in SQLite)."""
    validate([path])
    err.print(
        "[yellow]The evaluation engine has not landed yet[/yellow]: the manifests above are "
        "valid, but nothing was generated. `make demo` will run them once `slam run` exists."
    )
    raise typer.Exit(2)


if __name__ == "__main__":
    app()
