"""The router's and the cache's Redis client, built from REDIS_URL (no connection is opened here).

`redis://`, `rediss://` and `unix://` use one client; `redis+cluster://h1:p1,h2:p2` a cluster client (the
breaker's keys carry a hash tag per deployment, so each script touches one slot); `redis+sentinel://
host:port[,host:port]/service` asks the sentinels for the master. Calls time out after `timeout_s` and
are not retried inside redis-py: the breaker and the cache fall back on their own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff


def redis_from_url(url: str, *, timeout_s: float) -> Any:
    """A redis.asyncio client (plain, cluster or sentinel-backed) for `url`."""
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
    }
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme == "redis+cluster":
        nodes = [ClusterNode(host, int(port or 6379)) for host, port in _hosts(rest)]
        return RedisCluster(startup_nodes=nodes, **_auth(rest), **options)
    if scheme == "redis+sentinel":
        hosts, _, service = rest.rpartition("/")
        sentinel = Sentinel(
            [(host, int(port or 26379)) for host, port in _hosts(hosts)], **_auth(rest), **options
        )
        return sentinel.master_for(service or "mymaster", **options)
    return Redis.from_url(url.replace("redis+unix://", "unix://", 1), **options)


def _hosts(netlocs: str) -> list[tuple[str, str]]:
    """`user:pw@h1:p1,h2:p2` -> [(h1, p1), (h2, p2)]."""
    found = []
    for netloc in netlocs.rpartition("@")[2].split(","):
        host, _, port = netloc.strip().partition(":")
        found.append((host, port))
    return found


def _auth(rest: str) -> dict[str, Any]:
    """The credentials of `user:pw@hosts...`, if any."""
    userinfo, at, _ = rest.partition("/")[0].rpartition("@")
    if not at:
        return {}
    username, _, password = userinfo.partition(":")
    auth: dict[str, Any] = {"password": unquote(password)} if password else {}
    if username:
        auth["username"] = unquote(username)
    return auth
