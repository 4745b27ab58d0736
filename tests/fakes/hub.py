"""A local HTTP server speaking the Hugging Face Hub's model-info API, with its failure modes.

Repositories are registered with a behaviour: found (JSON like the Hub's), not found (404
RepoNotFound), gated (401/403 GatedRepo unless the right token is sent), server error (500) or
hang (no answer within the client's timeout). A repository's `files` are served by the file API
(HEAD and GET on /<repo>/resolve/<revision>/<file>), as hf_hub_download reads it, and listed
as `snapshot_download` lists them: in the model info's `siblings` (older huggingface_hub) and by
the tree API (/api/models/<repo>/tree/<revision>, huggingface_hub 1.x and 2.x), with the
headers it checks (X-Repo-Commit; for weights, stored in LFS on the Hub, X-Linked-Etag with the
file's sha256 and X-Linked-Size). Point huggingface_hub at it with HF_ENDPOINT.

The listing API (/api/models, what `HfApi.list_models` reads) pages its answers with a Link
header as the Hub does, filters by pipeline tag, search text and gated, sorts by downloads or
likes, and plays the Hub's failures: a status code for the next listing requests
(`list_faults`, e.g. a 429 that a retry gets past) and every page from one on failing
(`fail_from_page`: the caller keeps what it had).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode

SHA = "0123456789abcdef0123456789abcdef01234567"
RESOLVE = re.compile(r"/(.+?)/resolve/([^/]+)/(.+)")
TREE = re.compile(r"/api/models/(.+?)/tree/([^/]+)(?:/(.*))?")
LFS_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt")


@dataclass(frozen=True)
class FileFacts:
    """What the Hub says of a file: git blob id, size and, for an LFS file, its sha256."""

    blob: str
    size: int
    sha256: str | None

    @classmethod
    def of(cls, path: Path) -> FileFacts:
        size = path.stat().st_size
        blob, digest = hashlib.sha1(f"blob {size}\0".encode()), hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                blob.update(chunk)
                digest.update(chunk)
        lfs = path.suffix in LFS_SUFFIXES
        return cls(blob.hexdigest(), size, digest.hexdigest() if lfs else None)


_FACTS: dict[tuple[Path, int, float], FileFacts] = {}


def facts(path: Path) -> FileFacts:
    st = path.stat()
    key = (path.resolve(), st.st_size, st.st_mtime)
    if key not in _FACTS:
        _FACTS[key] = FileFacts.of(path)
    return _FACTS[key]


@dataclass
class Repo:
    behaviour: str = "found"  # found | not_found | gated | error | hang
    sha: str = SHA
    parameters: int | None = 7_241_732_096
    license: str = "apache-2.0"
    token: str | None = None  # for gated repos: the token that has access
    revisions: tuple[str, ...] = ("main",)
    files: dict[str, Path] = field(default_factory=dict)  # served at /<repo>/resolve/<rev>/<f>
    downloads: int = 0
    likes: int = 0
    pipeline_tag: str = "text-generation"
    tags: tuple[str, ...] = ()
    dtypes: dict[str, int] | None = None  # safetensors element counts by dtype (default BF16)
    gguf: bool = False  # a GGUF repository: the Hub states its parameters under "gguf"
    faults: list[int] = field(default_factory=list)  # next model-info answers' status codes

    def listed(self, repo_id: str) -> dict:
        """The repository as the listing API shows it."""
        body = {"_id": repo_id, "id": repo_id, "modelId": repo_id, "sha": self.sha,
                "private": False, "downloads": self.downloads, "likes": self.likes,
                "gated": "manual" if self.behaviour == "gated" else False,
                "pipeline_tag": self.pipeline_tag,
                "tags": [*self.tags, *(["gguf"] if self.gguf else []),
                         f"license:{self.license}", self.pipeline_tag],
                "cardData": {"license": self.license}}
        if self.parameters and self.gguf:
            body["gguf"] = {"total": self.parameters, "architecture": "llama"}
        elif self.parameters:
            dtypes = self.dtypes or {"BF16": self.parameters}
            body["safetensors"] = {"parameters": dtypes, "total": sum(dtypes.values())}
        return body


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, auth header)
    hang_seconds: float = 30.0
    # Set: hanging requests answer at once (a test ends without waiting for them).
    release: threading.Event = field(default_factory=threading.Event)
    page_size: int = 3  # listing answers per page
    list_faults: list[int] = field(default_factory=list)  # next listing requests' status codes
    fail_from_page: int | None = None  # listing pages from this one (0-based) answer 500

    def start(self, host: str = "127.0.0.1") -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _send(self, code: int, body: dict | list,
                      headers: dict[str, str] | None = None):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _file(self, repo_id: str, revision: str, name: str, body: bool) -> None:
                """The Hub's file API, as huggingface_hub.hf_hub_download reads it: HEAD for
                the commit, ETag and size, then GET for the bytes."""
                repo = hub.repos.get(repo_id)
                path = repo.files.get(name) if repo else None
                if repo is None or path is None or (revision not in repo.revisions
                                                     and revision != repo.sha):
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                f = facts(path)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(f.size))
                self.send_header("ETag", f'"{f.blob}"')
                if f.sha256:  # an LFS file: the Hub names its content hash and size
                    self.send_header("X-Linked-Etag", f'"{f.sha256}"')
                    self.send_header("X-Linked-Size", str(f.size))
                self.send_header("X-Repo-Commit", repo.sha)
                self.end_headers()
                if body:
                    with path.open("rb") as f:
                        while chunk := f.read(1 << 20):
                            self.wfile.write(chunk)

            def _tree(self, repo_id: str, revision: str, folder: str | None) -> None:
                """The tree API: every file of the repository at `revision` (one page)."""
                repo = hub.repos.get(repo_id)
                if repo is None or repo.behaviour != "found":
                    return self._send(404, {"error": "Repository not found"},
                                      {"X-Error-Code": "RepoNotFound"})
                if revision not in repo.revisions and revision != repo.sha:
                    return self._send(404, {"error": "Invalid rev id"},
                                      {"X-Error-Code": "RevisionNotFound"})
                entries = []
                for name, path in sorted(repo.files.items()):
                    if folder and not name.startswith(folder.rstrip("/") + "/"):
                        continue
                    f = facts(path)
                    entry = {"type": "file", "oid": f.blob, "size": f.size, "path": name}
                    if f.sha256:
                        entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
                    entries.append(entry)
                return self._send(200, entries)

            def _list(self, query: dict[str, list[str]]) -> None:
                """The listing API: filtered, sorted, one page, a Link to the next."""
                if hub.list_faults:
                    code = hub.list_faults.pop(0)
                    return self._send(code, {"error": f"HTTP {code}"},
                                      {"Retry-After": "1"} if code == 429 else None)
                page = int(query.get("cursor", ["0"])[0])
                if hub.fail_from_page is not None and page >= hub.fail_from_page:
                    return self._send(500, {"error": "Internal Error"})

                def arg(name: str) -> str | None:
                    return query.get(name, [None])[0]

                rows = [(rid, r) for rid, r in hub.repos.items()
                        if r.behaviour in ("found", "gated", "error")]
                if arg("pipeline_tag"):
                    rows = [(i, r) for i, r in rows if r.pipeline_tag == arg("pipeline_tag")]
                if arg("search"):
                    rows = [(i, r) for i, r in rows if arg("search").lower() in i.lower()]
                for tag in query.get("filter", []):  # e.g. base_model:quantized:<id>, awq
                    rows = [(i, r) for i, r in rows if tag in r.listed(i)["tags"]]
                if arg("gated") is not None:
                    want = arg("gated").lower() == "true"
                    rows = [(i, r) for i, r in rows if (r.behaviour == "gated") == want]
                key = arg("sort") or "downloads"
                # Most first, as the Hub sorts (huggingface_hub 2.x sends no direction).
                rows.sort(key=lambda ir: (-getattr(ir[1], key, 0), ir[0]))
                if arg("limit"):
                    rows = rows[:int(arg("limit"))]
                chunk = rows[page * hub.page_size:(page + 1) * hub.page_size]
                headers = {}
                if (page + 1) * hub.page_size < len(rows):
                    nxt = {k: v for k, v in query.items() if k != "cursor"}
                    nxt["cursor"] = [str(page + 1)]
                    headers["Link"] = (f"<{hub.url}/api/models?{urlencode(nxt, doseq=True)}>; "
                                       'rel="next"')
                return self._send(200, [r.listed(i) for i, r in chunk], headers)

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                hub.requests.append((self.path, self.headers.get("Authorization")))
                m = RESOLVE.fullmatch(unquote(self.path.split("?")[0]))
                if m is None:
                    return self._send(404, {"error": "not found"})
                self._file(*m.groups(), body=False)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                hub.requests.append((self.path, self.headers.get("Authorization")))
                path = unquote(self.path.split("?")[0])
                if (m := RESOLVE.fullmatch(path)) is not None:
                    return self._file(*m.groups(), body=True)
                if (m := TREE.fullmatch(path)) is not None:
                    return self._tree(*m.groups())
                if path == "/api/models":
                    query = self.path.split("?", 1)[1] if "?" in self.path else ""
                    return self._list(parse_qs(query, keep_blank_values=True))
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
                if repo.faults:
                    code = repo.faults.pop(0)
                    return self._send(code, {"error": f"HTTP {code}"},
                                      {"Retry-After": "1"} if code == 429 else None)
                if repo.behaviour == "hang":
                    hub.release.wait(hub.hang_seconds)
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
                    **repo.listed(repo_id), "disabled": False,
                    "siblings": [{"rfilename": n} for n in sorted(repo.files)],
                }
                return self._send(200, body)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
