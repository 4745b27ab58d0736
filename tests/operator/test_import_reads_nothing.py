"""Importing any operator or CLI module reads no environment variable: configuration is read when
a process starts (the operator's settings.py, each CLI command's options), so a bad value can
stop that process with a clear line instead of breaking every import (and every `slam` command).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.controlplane.cluster import REPO

PACKAGES = ("slam", "slam_operator")

LIST = textwrap.dedent("""
    import importlib, json, pkgutil, sys
    names = []
    for top in %r:
        pkg = importlib.import_module(top)
        for m in pkgutil.walk_packages(pkg.__path__, top + "."):
            if ".migrations" not in m.name:  # Alembic's env.py runs a migration when imported
                names.append(m.name)
    for name in names:
        importlib.import_module(name)
    ours = tuple(t + "." for t in %r)
    others = sorted(n for n in sys.modules if not n.startswith(ours) and n not in %r)
    print(json.dumps({"ours": names, "others": others}))
""") % (PACKAGES, PACKAGES, PACKAGES)

WATCH = textwrap.dedent("""
    import importlib, json, os, sys
    from collections.abc import MutableMapping
    found = json.loads(sys.stdin.read())
    for name in found["others"]:  # third-party modules first: what they read is theirs
        try:
            importlib.import_module(name)
        except Exception:
            pass
    ROOTS = %r
    reads = []

    class Watched(MutableMapping):
        def __init__(self, env):
            self._env = env
        def _note(self, key):
            frame = sys._getframe(2)
            while frame is not None:
                path = frame.f_code.co_filename
                if any(path.startswith(r) for r in ROOTS):
                    reads.append((key, path, frame.f_lineno))
                    return
                if not path.endswith(("os.py", "_collections_abc.py")):
                    return  # a third-party module's own read
                frame = frame.f_back
        def __getitem__(self, key):
            self._note(key)
            return self._env[key]
        def __contains__(self, key):
            self._note(key)
            return key in self._env
        def get(self, key, default=None):
            self._note(key)
            return self._env.get(key, default)
        def __iter__(self):
            self._note("*")
            return iter(self._env)
        def __len__(self):
            return len(self._env)
        def __setitem__(self, key, value):
            self._env[key] = value
        def __delitem__(self, key):
            del self._env[key]

    os.environ = Watched(os.environ)
    for name in found["ours"]:
        importlib.import_module(name)
    print(json.dumps(reads))
""") % ([str(REPO / "engine"), str(REPO / "operator")],)


def test_importing_every_operator_and_cli_module_reads_no_environment() -> None:
    listed = subprocess.run([sys.executable, "-c", LIST], capture_output=True, text=True,
                            timeout=300, cwd=REPO)
    assert listed.returncode == 0, listed.stderr[-3000:]
    found = json.loads(listed.stdout.strip().splitlines()[-1])
    assert "slam_operator.handlers" in found["ours"] and "slam.cli" in found["ours"]
    watched = subprocess.run([sys.executable, "-c", WATCH], input=listed.stdout.strip()
                             .splitlines()[-1], capture_output=True, text=True, timeout=300,
                             cwd=REPO)
    assert watched.returncode == 0, watched.stderr[-3000:]
    reads = json.loads(watched.stdout.strip().splitlines()[-1])
    assert reads == [], f"read at import: {reads}"


def test_the_watch_sees_a_read_at_import() -> None:
    """The check above can fail: a module of ours that reads a variable at import is caught."""
    module = REPO / "engine" / "slam" / "_reads_at_import_probe.py"
    module.write_text("import os\nVALUE = os.environ.get('SLAM_SOMETHING')\n")
    try:
        found = {"ours": ["slam._reads_at_import_probe"], "others": []}
        watched = subprocess.run([sys.executable, "-c", WATCH], input=json.dumps(found),
                                 capture_output=True, text=True, timeout=120, cwd=REPO)
        assert watched.returncode == 0, watched.stderr[-3000:]
        reads = json.loads(watched.stdout.strip().splitlines()[-1])
        assert [r[0] for r in reads] == ["SLAM_SOMETHING"], reads
    finally:
        module.unlink()
