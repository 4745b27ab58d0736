"""Argo CD's health check for our kinds, run as Argo CD runs it: the Lua in deploy/argocd with
the object as the global `obj` (lupa's Lua in place of Argo CD's gopher-lua)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

ARGOCD = Path(__file__).resolve().parents[1] / "deploy" / "argocd"


@cache
def _lua():
    import lupa

    return lupa.LuaRuntime(unpack_returned_tuples=True)


def health(kind: str, obj: dict) -> dict:
    """{"status": Healthy|Progressing|Degraded|Suspended, "message": ...} for a live object."""
    lua = _lua()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute((ARGOCD / f"slam.dev_{kind}.lua").read_text())
    return dict(result)
