"""How the operator authenticates from a kubeconfig (out of cluster): found on the real API server,
where a token kubeconfig reached it as system:anonymous."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = ("from sparkbook.kube import connection_from_environment; import json; "
         "c = connection_from_environment(); print(json.dumps({'server': c.server, 'headers': c.headers}))")


def _connection(kubeconfig: Path) -> dict:
    # The kubernetes client reads KUBECONFIG when it is imported: a fresh interpreter per case.
    out = subprocess.run([sys.executable, "-c", PROBE], env={"KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _kubeconfig(tmp_path: Path, user: dict) -> Path:
    path = tmp_path / "config"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path


def test_a_service_account_token_is_sent_as_a_bearer_header(tmp_path: Path) -> None:
    conn = _connection(_kubeconfig(tmp_path, {"token": "abc.def.ghi"}))
    assert conn["server"] == "http://127.0.0.1:1"
    assert conn["headers"] == {"Authorization": "Bearer abc.def.ghi"}


@pytest.mark.parametrize("user", [{}, {"client-certificate-data": ""}])
def test_no_credentials_means_no_header(tmp_path: Path, user: dict) -> None:
    assert _connection(_kubeconfig(tmp_path, user))["headers"] == {}
