"""How the operator finds and authenticates to the API server: in a pod, its service account; else
the kubeconfig (sparkbook.kube's own reader: the `kubernetes` client is not loaded any more).

The token case was found on the real API server, where a token kubeconfig reached it as
system:anonymous."""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sparkbook.kube import (
    ConfigError,
    ExecPlugin,
    Kube,
    TokenFile,
    connection_from_environment,
    kubeconfig_credentials,
    read_credentials,
)

ROOT = Path(__file__).resolve().parents[2]


def kubeconfig(path: Path, *, user: dict[str, Any], cluster: dict[str, Any] | None = None,
               namespace: str | None = None) -> Path:
    context: dict[str, Any] = {"cluster": "c", "user": "u", **({"namespace": namespace} if namespace else {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": cluster or {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": context}],
    }))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate and its key: the CA and the client certificate at once."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-subj", "/CN=sparkbook-test", "-days", "1"],
                   cwd=d, check=True, capture_output=True)
    return d


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_a_service_account_token_is_sent_as_a_bearer_header(tmp_path: Path) -> None:
    conn = connection_from_environment({"KUBECONFIG": str(kubeconfig(tmp_path / "config", user={"token": "abc.def"}))})
    assert conn.server == "http://127.0.0.1:1"
    assert conn.headers == {"Authorization": "Bearer abc.def"}
    assert conn.ssl is True and conn.bearer is None


@pytest.mark.parametrize("user", [{}, {"client-certificate-data": ""}])
def test_no_credentials_means_no_header(tmp_path: Path, user: dict[str, Any]) -> None:
    assert connection_from_environment({"KUBECONFIG": str(kubeconfig(tmp_path / "config", user=user))}).headers == {}


def test_data_fields_are_decoded_and_loaded(tmp_path: Path, pki: Path) -> None:
    path = kubeconfig(tmp_path / "config", namespace="team-a",
                      cluster={"server": "https://127.0.0.1:6443/", "certificate-authority-data": b64(pki / "cert.pem")},
                      user={"client-certificate-data": b64(pki / "cert.pem"), "client-key-data": b64(pki / "key.pem")})
    creds = read_credentials({"KUBECONFIG": str(path)})
    assert creds.server == "https://127.0.0.1:6443"
    assert creds.ca_data == creds.cert_data == (pki / "cert.pem").read_text()
    assert creds.key_data == (pki / "key.pem").read_text()
    assert creds.namespace == "team-a"
    context = creds.connection().ssl
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "sparkbook-test"),),)]
    assert not list(tmp_path.glob("sparkbook-tls-*"))  # the key went through a directory that is gone


def test_file_paths_are_relative_to_the_kubeconfig(tmp_path: Path, pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(pki, tmp_path / "pki")
    (tmp_path / "token").write_text("from-a-file\n")
    path = kubeconfig(tmp_path / "kube" / "config",
                      cluster={"server": "https://127.0.0.1:6443", "certificate-authority": "../pki/cert.pem"},
                      user={"client-certificate": "../pki/cert.pem", "client-key": "../pki/key.pem",
                            "tokenFile": "../token"})
    monkeypatch.chdir(tmp_path / "pki")  # not where the paths are relative to
    creds = read_credentials({"KUBECONFIG": str(path)})
    assert creds.ca_file == str(tmp_path / "kube" / ".." / "pki" / "cert.pem")
    assert creds.key_file == str(tmp_path / "kube" / ".." / "pki" / "key.pem")
    conn = creds.connection()
    assert isinstance(conn.ssl, ssl.SSLContext) and len(conn.ssl.get_ca_certs()) == 1
    assert conn.headers == {}
    assert conn.bearer is not None and conn.bearer.token() == "from-a-file"


def test_insecure_skip_tls_verify(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", user={"token": "t"},
                      cluster={"server": "https://10.1.2.3:6443", "insecure-skip-tls-verify": True})
    context = connection_from_environment({"KUBECONFIG": str(path)}).ssl
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname


def test_basic_auth(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", user={"username": "ann", "password": "s3cret"})
    header = connection_from_environment({"KUBECONFIG": str(path)}).headers["Authorization"]
    assert header == "Basic " + base64.b64encode(b"ann:s3cret").decode()


def test_a_kubeconfig_list_is_merged_as_kubectl_does(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text(json.dumps({  # the current context, its cluster; its user is in the next file
        "current-context": "work",
        "contexts": [{"name": "work", "context": {"cluster": "prod", "user": "me"}}],
        "clusters": [{"name": "prod", "cluster": {"server": "http://prod:1"}}],
    }))
    second = tmp_path / "b.yaml"
    second.write_text(json.dumps({  # its current-context and its "prod" lose: the first file set them
        "current-context": "other",
        "contexts": [{"name": "other", "context": {"cluster": "prod", "user": "me"}}],
        "clusters": [{"name": "prod", "cluster": {"server": "http://elsewhere:1"}}],
        "users": [{"name": "me", "user": {"token": "mine"}}],
    }))
    missing = tmp_path / "not-there.yaml"
    conn = connection_from_environment({"KUBECONFIG": os.pathsep.join([str(missing), str(first), "", str(second)])})
    assert (conn.server, conn.headers) == ("http://prod:1", {"Authorization": "Bearer mine"})


def test_the_default_kubeconfig_is_in_home(tmp_path: Path) -> None:
    kubeconfig(tmp_path / ".kube" / "config", user={"token": "home"})
    assert connection_from_environment({"HOME": str(tmp_path)}).headers == {"Authorization": "Bearer home"}


def test_nothing_configured_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not in a cluster .* and no kubeconfig .*not-there does not exist"):
        connection_from_environment({"KUBECONFIG": str(tmp_path / "not-there")})


@pytest.mark.parametrize("config, message", [
    ({"contexts": []}, "has no current-context"),
    ({"current-context": "x"}, "has no context 'x'"),
    ({"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "nope"}}]}, "names no known cluster"),
])
def test_a_broken_kubeconfig_says_what_is_missing(tmp_path: Path, config: dict[str, Any], message: str) -> None:
    (tmp_path / "config").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=message):
        kubeconfig_credentials([str(tmp_path / "config")])


def service_account(directory: Path, token: str = "sa-token-1") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "token").write_text(token)
    (directory / "namespace").write_text("sparkbook-system")
    return directory


def test_in_cluster_the_service_account_is_used(tmp_path: Path, pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sa = service_account(tmp_path / "sa")
    shutil.copy(pki / "cert.pem", sa / "ca.crt")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "config", user={"token": "not-this"})))
    creds = read_credentials(service_account_dir=str(sa))
    assert (creds.server, creds.namespace, creds.ca_file) == ("https://10.96.0.1:443", "sparkbook-system",
                                                             str(sa / "ca.crt"))
    conn = creds.connection()
    assert conn.headers == {} and isinstance(conn.ssl, ssl.SSLContext) and len(conn.ssl.get_ca_certs()) == 1
    assert conn.bearer is not None and conn.bearer.token() == "sa-token-1"


def test_in_cluster_on_ipv6(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    assert read_credentials(env, service_account_dir=str(service_account(tmp_path))).server == "https://[fd00::1]:443"


def test_in_cluster_without_a_token_is_a_clear_error(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(ConfigError, match="no service-account token at .*automountServiceAccountToken"):
        read_credentials(env, service_account_dir=str(tmp_path))


def test_a_rotated_token_is_read_again(tmp_path: Path) -> None:
    sa = service_account(tmp_path)
    now = [1000.0]
    tokens = TokenFile(str(sa / "token"), clock=lambda: now[0])
    assert tokens.token() == "sa-token-1"
    (sa / "token").write_text("sa-token-2")  # the kubelet's rotation
    now[0] += 30
    assert tokens.token() == "sa-token-1"  # read at most once a minute
    now[0] += 31
    assert tokens.token() == "sa-token-2"
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    kube = Kube(connection_from_environment(env, service_account_dir=str(sa)))
    assert kube._headers(None)["Authorization"] == "Bearer sa-token-2"


PLUGIN = textwrap.dedent("""\
    #!{python}
    import json, os, sys
    runs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runs")
    count = len(open(runs).read()) + 1 if os.path.exists(runs) else 1
    open(runs, "w").write("x" * count)
    info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
    assert info["spec"]["cluster"]["server"] == "https://api.example:443", info
    print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                      "status": {{"token": f"{{os.environ['PREFIX']}}-{{count}}",
                                 "expirationTimestamp": "2030-01-01T00:00:00Z"}}}}))
""")


def test_an_exec_plugin_token_is_kept_until_it_expires(tmp_path: Path) -> None:
    plugin = tmp_path / "bin" / "get-token"
    plugin.parent.mkdir()
    plugin.write_text(PLUGIN.format(python=sys.executable))
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    path = kubeconfig(tmp_path / "config", cluster={"server": "https://api.example:443", "insecure-skip-tls-verify": True},
                      user={"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "./bin/get-token",
                                     "env": [{"name": "PREFIX", "value": "tok"}], "provideClusterInfo": True}})
    conn = connection_from_environment({"KUBECONFIG": str(path)})
    assert isinstance(conn.bearer, ExecPlugin)
    assert conn.headers == {}
    assert conn.bearer.token() == conn.bearer.token() == "tok-1"  # asked once at start, then cached
    conn.bearer.clock = lambda: 1893456000.0 - 10  # ten seconds before 2030: time to ask again
    assert conn.bearer.token() == "tok-2"


def test_a_failing_exec_plugin_stops_the_start(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", user={"exec": {"command": "false"}})
    with pytest.raises(ConfigError, match="exec plugin 'false' failed"):
        connection_from_environment({"KUBECONFIG": str(path)})


def _run(code: str, **env: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                              "PYTHONPATH": str(ROOT / "operator"), **env})
    return out.stdout.strip()


def test_the_operator_does_not_load_the_kubernetes_client(tmp_path: Path) -> None:
    # What `sparkbook run` imports before kopf starts (sparkbook.cli, then sparkbook.handlers, which
    # keeps kopf from importing the client even when it is installed), and the connection it reads.
    code = ("import sys\n"
            "import sparkbook.cli, sparkbook.handlers\n"
            "from sparkbook.kube import connection_from_environment\n"
            "connection_from_environment()\n"
            "print(sorted(m for m, v in sys.modules.items() if v is not None and m.split('.')[0] == 'kubernetes'))\n")
    assert _run(code, KUBECONFIG=str(kubeconfig(tmp_path / "config", user={"token": "t"}))) == "[]"


def test_kopf_logs_in_with_the_same_credentials(tmp_path: Path) -> None:
    # In a subprocess: importing sparkbook.handlers keeps this process from importing `kubernetes`.
    code = ("import json, sparkbook.handlers as h\n"
            "info = h.login()\n"
            "print(json.dumps([info.server, info.as_http_headers(), info.default_namespace]))\n")
    path = kubeconfig(tmp_path / "config", user={"token": "abc"}, namespace="ns1")
    assert json.loads(_run(code, KUBECONFIG=str(path))) == ["http://127.0.0.1:1", {"Authorization": "Bearer abc"},
                                                            "ns1"]


# The `kubernetes` client's own reading of the same kubeconfigs, as connection_from_environment did
# before: what it sends and which TLS files it uses must be what ours does.
ORACLE = """
import json, sys
from kubernetes import client, config
read = lambda p: open(p).read() if p else None
for path in sys.argv[1:]:
    cfg = client.Configuration()
    config.load_kube_config(config_file=path, client_configuration=cfg)
    headers = {s["key"].title(): s["value"] for s in cfg.auth_settings().values()
               if s.get("in") == "header" and s.get("value")}
    print(json.dumps({"server": cfg.host.rstrip("/"), "headers": headers, "verify": cfg.verify_ssl,
                      "ca": read(cfg.ssl_ca_cert), "cert": read(cfg.cert_file), "key": read(cfg.key_file)}))
"""


def test_the_kubernetes_client_reads_the_same(tmp_path: Path, pki: Path) -> None:
    pytest.importorskip("kubernetes", reason="the old reader, a test dependency")
    cases = {
        "emulator": ({"server": "http://127.0.0.1:1"}, {"token": "emulator-token"}),
        "data": ({"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(pki / "cert.pem")},
                 {"client-certificate-data": b64(pki / "cert.pem"), "client-key-data": b64(pki / "key.pem")}),
        "files": ({"server": "https://127.0.0.1:6443", "certificate-authority": str(pki / "cert.pem")},
                  {"client-certificate": str(pki / "cert.pem"), "client-key": str(pki / "key.pem")}),
        "insecure": ({"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}, {"token": "x"}),
    }
    paths = [kubeconfig(tmp_path / name / "config", cluster=cluster, user=user)
             for name, (cluster, user) in cases.items()]
    out = subprocess.run([sys.executable, "-c", ORACLE, *map(str, paths)], capture_output=True, text=True, check=True)
    for name, path, line in zip(cases, paths, out.stdout.splitlines(), strict=True):
        creds = read_credentials({"KUBECONFIG": str(path)})
        ours = {"server": creds.server, "headers": creds.connection().headers, "verify": not creds.insecure,
                "ca": creds.ca_data or (Path(creds.ca_file).read_text() if creds.ca_file else None),
                "cert": creds.cert_data or (Path(creds.cert_file).read_text() if creds.cert_file else None),
                "key": creds.key_data or (Path(creds.key_file).read_text() if creds.key_file else None)}
        assert ours == json.loads(line), name
