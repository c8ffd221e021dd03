"""Load generator for bench/run.py, run as its own process so it never shares a GIL with the emulator.

    python bench/load.py ceiling TARGET NAMESPACE COUNT CONCURRENCY
    python bench/load.py create TARGET OBJECTS.json CONCURRENCY

TARGET is the emulator's URL, or the path of a kubeconfig (a real API server: its CA and client
certificate). Both POST over one aiohttp session (keep-alive, at most CONCURRENCY connections)
and print one JSON object: {"count", "errors", "seconds", "per_second"}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import aiohttp

from sparkbook.kube import PLURALS, connection_from_environment, plural_path

HEADERS = {"User-Agent": "sparkbook-bench-load", "Authorization": "Bearer emulator-token",
           "Content-Type": "application/json", "Accept": "application/json"}


async def post_all(target: str, objects: Iterator[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    count = errors = 0
    headers = dict(HEADERS)
    if os.path.isfile(target):
        connection = connection_from_environment({"KUBECONFIG": target})
        url = connection.server
        headers.pop("Authorization")
        headers.update(connection.headers)
        connector = aiohttp.TCPConnector(limit=concurrency, ssl=connection.ssl)
    else:
        url = target
        connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            nonlocal count, errors
            for obj in objects:  # a shared iterator: each object is taken by one worker
                meta = obj["metadata"]
                api, kind = obj["apiVersion"], obj["kind"]
                # a peer's kinds (bench/peers.py) are not Sparkbook's: their plurals are regular
                path = plural_path(api, PLURALS.get((api, kind)) or kind.lower() + "s", meta.get("namespace"))
                async with session.post(url + path, data=json.dumps(obj)) as response:
                    await response.read()
                    count += 1
                    errors += response.status >= 300

        # Warm the pool (connection set-up is not what we measure).
        async with session.get(url + "/api") as response:
            await response.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"count": count, "errors": errors, "seconds": seconds, "per_second": count / seconds if seconds else 0.0}


def configmaps(namespace: str, count: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        yield {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": f"ceiling-{i}", "namespace": namespace, "labels": {"bench": "ceiling"}},
               "data": {"key": "x" * 200}}


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "ceiling":
        url, namespace, count, concurrency = argv[1], argv[2], int(argv[3]), int(argv[4])
        result = asyncio.run(post_all(url, configmaps(namespace, count), concurrency))
    elif mode == "create":
        url, path, concurrency = argv[1], argv[2], int(argv[3])
        with open(path) as f:
            objects = json.load(f)
        result = asyncio.run(post_all(url, iter(objects), concurrency))
    else:
        raise SystemExit(__doc__)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
