"""A local HTTP server speaking the Hugging Face Hub's model-info API, with its failure modes.

Repositories are registered with a behaviour: found (JSON like the Hub's), not found (404
RepoNotFound), gated (401/403 GatedRepo unless the right token is sent), server error (500) or
hang (no answer within the client's timeout). Point huggingface_hub at it with HF_ENDPOINT.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Repo:
    behaviour: str = "found"  # found | not_found | gated | error | hang
    sha: str = SHA
    parameters: int | None = 7_241_732_096
    license: str = "apache-2.0"
    token: str | None = None  # for gated repos: the token that has access
    revisions: tuple[str, ...] = ("main",)


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, auth header)
    hang_seconds: float = 30.0

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _send(self, code: int, body: dict, headers: dict[str, str] | None = None):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                hub.requests.append((self.path, self.headers.get("Authorization")))
                path = unquote(self.path.split("?")[0])
                if not path.startswith("/api/models/"):
                    return self._send(404, {"error": "not found"})
                rest = path[len("/api/models/"):]
                repo_id, _, revision = rest.partition("/revision/")
                revision = revision or "main"
                repo = hub.repos.get(repo_id)
                if repo is None or repo.behaviour == "not_found":
                    return self._send(
                        401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
                    )
                if repo.behaviour == "error":
                    return self._send(500, {"error": "Internal Error"})
                if repo.behaviour == "hang":
                    time.sleep(hub.hang_seconds)
                    return self._send(504, {"error": "timeout"})
                auth = self.headers.get("Authorization")
                if repo.behaviour == "gated" and auth != f"Bearer {repo.token}":
                    return self._send(
                        403 if auth else 401,
                        {"error": f"Access to model {repo_id} is restricted."},
                        {"X-Error-Code": "GatedRepo"},
                    )
                if revision not in repo.revisions and revision != repo.sha:
                    return self._send(
                        404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"}
                    )
                body = {
                    "_id": "x", "id": repo_id, "modelId": repo_id, "sha": repo.sha,
                    "private": False, "disabled": False, "downloads": 0, "likes": 0,
                    "gated": "manual" if repo.behaviour == "gated" else False,
                    "tags": [], "siblings": [],
                    "cardData": {"license": repo.license},
                }
                if repo.parameters:
                    body["safetensors"] = {
                        "parameters": {"BF16": repo.parameters}, "total": repo.parameters
                    }
                return self._send(200, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
