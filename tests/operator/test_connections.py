"""kopf's connection pool to the API server is bounded (issue 17): a burst of thousands of
ModelDeployments must not open a TLS connection per request in flight, yet every watch stream
must still get its own connection, or the operator would wait forever for a free one."""

from __future__ import annotations

import asyncio
import logging

import kopf
import pytest

from slam_operator import handlers
from slam_operator.names import WATCHED
from slam_operator.settings import from_env


def _watched_by_handlers() -> set[tuple[str, str, str]]:
    registry = kopf.get_default_registry()
    return {(s.group or "", s.version or "", s.any_name or s.plural or "")
            for part in (registry._indexing, registry._watching, registry._spawning,
                         registry._changing)
            for s in part.get_all_selectors()}


def test_every_kind_a_handler_watches_is_counted_for_its_watch_stream() -> None:
    assert _watched_by_handlers() == set(WATCHED)


@pytest.mark.parametrize(("namespaces", "streams"),
                         [("", 7 + 2), ("team-a, team-b,team-c", 21 + 2)])
def test_the_pool_has_a_connection_per_watch_stream_and_the_request_allowance(
        namespaces: str, streams: int) -> None:
    settings = from_env({"SLAM_WATCH_NAMESPACES": namespaces, "SLAM_API_CONNECTIONS": "5"})
    assert handlers.connection_limit(settings) == streams + 5


def test_login_gives_kopf_a_bounded_session_with_the_kubeconfig_credentials(
        monkeypatch, tmp_path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("""
apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u, namespace: team-a}}]
clusters: [{name: k, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: the-token}}]
""")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    settings = from_env({})

    async def login() -> kopf.AiohttpSession:
        info = await handlers.operator_login(logger=logging.getLogger("test"),
                                            settings=kopf.OperatorSettings(),
                                            memo=kopf.Memo(settings=settings))
        try:
            assert info.server == "https://127.0.0.1:6443"
            assert info.default_namespace == "team-a"
            session = info.aiohttp_session
            assert session.connector.limit == handlers.connection_limit(settings)
            assert session.headers["Authorization"] == "Bearer the-token"
        finally:
            await info.aiohttp_session.close()
        return info

    asyncio.run(login())
