"""Helpers for the API emulator's own tests: a tiny HTTP client, object builders, paths."""
from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path
from typing import Any

import yaml


FIXTURES = Path(__file__).parent / 'fixtures'
CRD_PATH = FIXTURES / 'widgets-crd.yaml'
_venv_kubectl = Path(sys.executable).parent / 'kubectl'
KUBECTL = str(_venv_kubectl) if _venv_kubectl.exists() else 'kubectl'
WIDGETS = '/apis/example.com/v1/namespaces/default/widgets'


class Api:
    """A minimal synchronous client that returns (status, body, headers) without raising."""

    def __init__(self, url: str) -> None:
        self.host, self.port = url.removeprefix('http://').split(':')

    def __call__(self, method: str, path: str, body: Any = None, *, ctype: str = 'application/json',
                 headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=10)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {'Content-Type': ctype, 'User-Agent': 'emulator-tests/1.0', **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        text = resp.read()
        conn.close()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text.decode()
        return resp.status, parsed, dict(resp.getheaders())

    def get(self, path: str, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return self('GET', path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return self('POST', path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return self('PUT', path, body, **kw)

    def patch(self, path: str, body: Any, ctype: str = 'application/merge-patch+json', **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return self('PATCH', path, body, ctype=ctype, **kw)

    def delete(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return self('DELETE', path, body, **kw)


def widget(name: str = 'w1', namespace: str = 'default', **spec: Any) -> dict[str, Any]:
    return {'apiVersion': 'example.com/v1', 'kind': 'Widget',
            'metadata': {'name': name, 'namespace': namespace}, 'spec': {'size': 3, **spec}}


def pod(name: str, namespace: str = 'default', labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {'apiVersion': 'v1', 'kind': 'Pod',
            'metadata': {'name': name, 'namespace': namespace, 'labels': labels or {}, **meta},
            'spec': {'containers': [{'name': 'main', 'image': 'busybox'}]}}


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())
