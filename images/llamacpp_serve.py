"""The llamacpp image's entrypoint: llama-server's arguments, served by llama-cpp-python.

The operator's llamacpp runtime passes llama.cpp's own server arguments (`--model-url`, `--alias`,
`--host`, `--port`, `--ctx-size`), so the upstream llama.cpp image and this one are
interchangeable. A model URL on the Hub ($HF_ENDPOINT/<repo>/resolve/<revision>/<file>) is
downloaded with huggingface_hub (the Hub's own client: $HF_TOKEN, resumable, cached under
$LLAMA_CACHE or $HF_HOME), then served with llama-cpp-python's OpenAI-compatible server plus the
`/health` endpoint the pod's probes call (it answers once the model is loaded).
"""

from __future__ import annotations

import argparse
import os
import re
import sys


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-url", "-mu", help="A GGUF file on the Hub (resolve URL).")
    source.add_argument("--model", "-m", help="A GGUF file on disk.")
    p.add_argument("--alias", "-a", help="The model name the API serves.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--ctx-size", "-c", type=int, default=2048)
    p.add_argument("--threads", "-t", type=int, default=None)
    return p.parse_args(argv)


def download(url: str) -> str:
    """The local path of a Hub resolve URL, downloaded through huggingface_hub."""
    from huggingface_hub import constants, hf_hub_download

    endpoint = constants.ENDPOINT.rstrip("/")  # $HF_ENDPOINT, or the public Hub
    m = re.fullmatch(re.escape(endpoint) + r"/(.+?)/resolve/([^/]+)/(.+)", url)
    if m is None:
        sys.exit(f"--model-url {url}: not a file on the Hub at {endpoint} "
                 "(expected <endpoint>/<repo>/resolve/<revision>/<file>)")
    repo, revision, filename = m.groups()
    cache = os.environ.get("LLAMA_CACHE") or None
    print(f"downloading {filename} from {repo}@{revision} ({endpoint})", flush=True)
    return hf_hub_download(repo, filename, revision=revision, cache_dir=cache)


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    path = args.model or download(args.model_url)

    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    model = ModelSettings(model=path, model_alias=args.alias or os.path.basename(path),
                          n_ctx=args.ctx_size, n_threads=args.threads or os.cpu_count() or 1)
    # Queue concurrent requests instead of cutting off the running stream (llama-cpp-python's
    # default), as llama-server does.
    server = ServerSettings(host=args.host, port=args.port, interrupt_requests=False)
    app = create_app(server_settings=server, model_settings=[model])  # loads the model

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
