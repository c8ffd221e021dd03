"""NotebookServer builders: golden manifests and the properties every child must have."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from sparkbook import names
from sparkbook.api.notebookserver import NotebookServerSpec
from sparkbook.build.notebook import notebook_children, statefulset
from sparkbook.render import RenderError, render_stream
from sparkbook.settings import Settings
from tests.pod_rules import hardening_problems

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
OWNER = {"apiVersion": names.API_VERSION, "kind": "NotebookServer",
         "metadata": {"name": "alice", "namespace": "team-a", "uid": "u-1"}}
SETTINGS = Settings(notebook_image="nb:1")


def _children(culled: bool = False, **spec: Any) -> dict[tuple[str, str], dict[str, Any]]:
    out = notebook_children(owner=OWNER, spec=NotebookServerSpec.model_validate(spec), image="nb:1",
                            token="t0k", culled=culled)
    return {(c["kind"], c["metadata"]["name"]): c for c in out}


@pytest.mark.parametrize("example", ["notebookserver.yaml", "notebookserver-shared.yaml"])
def test_render_matches_golden(example: str):
    rendered = render_stream((ROOT / "examples" / example).read_text(), settings=SETTINGS)
    golden = GOLDEN / example
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()


def test_inline_session_notebook_has_its_children_and_owns_a_session():
    children = _children(spark={"session": {"dynamicAllocation": {"maxExecutors": 4}}})
    assert set(children) == {
        ("NetworkPolicy", "alice-network"),
        ("Secret", "alice-token"),
        ("ConfigMap", "alice-startup"),
        ("PersistentVolumeClaim", "alice-home"),
        ("Service", "alice"),
        ("SparkSession", "alice-spark"),
        ("StatefulSet", "alice"),
    }
    session = children[("SparkSession", "alice-spark")]
    assert session["spec"]["dynamicAllocation"]["maxExecutors"] == 4
    assert session["spec"]["suspend"] is False
    assert session["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    env = {e["name"]: e for e in children[("StatefulSet", "alice")]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["SPARK_REMOTE"]["value"] == (
        "sc://alice-spark-connect.team-a.svc:15002/;authorization=Bearer%20$(SPARKBOOK_CONNECT_TOKEN)"
    )
    assert env["SPARKBOOK_CONNECT_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "alice-spark-connect-token"
    assert env["JUPYTER_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "alice-token", "key": "token"}


def test_plain_notebook_has_no_spark_variables():
    children = _children()
    assert ("SparkSession", "alice-spark") not in children
    env = {e["name"] for e in children[("StatefulSet", "alice")]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert not {"SPARK_REMOTE", "SPARKBOOK_CONNECT_TOKEN"} & env


def test_suspended_or_culled_scales_to_zero_and_suspends_the_owned_session():
    for children in (_children(suspend=True, spark={"session": {}}), _children(culled=True, spark={"session": {}})):
        assert children[("StatefulSet", "alice")]["spec"]["replicas"] == 0
        assert children[("SparkSession", "alice-spark")]["spec"]["suspend"] is True
    assert _children()[("StatefulSet", "alice")]["spec"]["replicas"] == 1


def test_pvc_is_owned_only_when_not_retained():
    assert "ownerReferences" not in _children()[("PersistentVolumeClaim", "alice-home")]["metadata"]
    owned = _children(storage={"retainOnDelete": False})[("PersistentVolumeClaim", "alice-home")]
    assert owned["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert owned["spec"]["resources"]["requests"]["storage"] == "10Gi"


def test_notebook_pod_is_restricted_writes_its_pvc_and_probes_jupyter():
    sts = statefulset(owner=OWNER, spec=NotebookServerSpec(), image="nb:1", running=True)
    pod = sts["spec"]["template"]["spec"]
    assert hardening_problems(pod) == []
    assert pod["securityContext"]["fsGroup"] == names.NOTEBOOK_GID
    assert pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/api", "port": "http"}
    assert {"name": "home", "mountPath": "/home/jovyan"} in c["volumeMounts"]
    assert c["resources"] == {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "4Gi"}}
    assert sts["spec"]["selector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()


def test_render_rejects_both_session_and_ref_and_never_prints_tokens():
    doc = yaml.safe_load((ROOT / "examples" / "notebookserver.yaml").read_text())
    doc["spec"]["spark"]["sessionRef"] = {"name": "analytics"}
    with pytest.raises(RenderError, match="either spark.sessionRef or spark.session"):
        render_stream(yaml.safe_dump(doc), settings=SETTINGS)
    out = render_stream((ROOT / "examples" / "notebookserver.yaml").read_text(), settings=SETTINGS)
    for obj in yaml.safe_load_all(out):
        if obj and obj["kind"] == "Secret":
            assert obj["stringData"]["token"].startswith("<generated")


def test_network_policies_admit_only_what_needs_in():
    from sparkbook.build.network import notebook_network_policy, session_network_policy

    nb = notebook_network_policy(owner=OWNER, operator_namespace="sparkbook-system", access_namespaces=["ingress"])
    (rule,) = nb["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8888}]
    assert rule["from"][0] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "sparkbook-system"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "sparkbook", "app.kubernetes.io/component": "operator"}},
    }
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}} in rule["from"]
    assert nb["spec"]["podSelector"]["matchLabels"] == {names.NOTEBOOK_LABEL: "alice", names.APP_COMPONENT: "notebook"}
    session_owner = {**OWNER, "kind": "SparkSession", "metadata": {**OWNER["metadata"], "name": "analytics"}}
    sp = session_network_policy(owner=session_owner, operator_namespace=None)
    own, notebooks, operator = sp["spec"]["ingress"]
    assert own == {"from": [{"podSelector": {"matchLabels": {names.SESSION_LABEL: "analytics"}}}]}
    assert notebooks["from"] == [{"podSelector": {"matchLabels": {names.USES_SESSION_LABEL: "analytics"}}}]
    assert [p["port"] for p in notebooks["ports"]] == [15002, 4040]
    assert [p["port"] for p in operator["ports"]] == [4040]
    # Notebook pods carry the label that lets them in, and only for their own session.
    sts = _children(spark={"sessionRef": {"name": "analytics"}})[("StatefulSet", "alice")]
    assert sts["spec"]["template"]["metadata"]["labels"][names.USES_SESSION_LABEL] == "analytics"


def test_scheduling_settings_reach_the_notebook_pod():
    tolerations = [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    sts = statefulset(owner=OWNER, spec=NotebookServerSpec.model_validate(
        {"nodeSelector": {"pool": "notebooks"}, "tolerations": tolerations}), image="nb:1", running=True)
    pod = sts["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "notebooks"} and pod["tolerations"] == tolerations
    assert "affinity" not in pod


HUB = {"secretName": "alice-jupyterhub", "baseUrl": "/user/alice/", "hubNamespace": "jupyterhub"}


def test_a_jupyterhub_server_runs_singleuser_with_the_hubs_secret_under_its_prefix():
    out = notebook_children(owner=OWNER, spec=NotebookServerSpec.model_validate(
        {"jupyterhub": HUB, "spark": {"sessionRef": {"name": "shared"}}}), image="nb:1", token="t0k",
        hub_env_version="42")
    by = {(c["kind"], c["metadata"]["name"]): c for c in out}
    sts = by[("StatefulSet", "alice")]
    pod = sts["spec"]["template"]
    c = pod["spec"]["containers"][0]
    assert c["command"][0] == "jupyterhub-singleuser"
    assert c["envFrom"] == [{"secretRef": {"name": "alice-jupyterhub"}}]
    env = {e["name"]: e for e in c["env"]}
    assert "JUPYTER_TOKEN" not in env  # the hub's OAuth logs users in, not a token
    assert env["SPARKBOOK_SPARK_UI_LINK"]["value"].startswith("/user/alice/proxy/")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/user/alice/api"
    # New credentials from the hub restart the server; Zero to JupyterHub's hub admits it by label.
    assert pod["metadata"]["annotations"][names.JUPYTERHUB_ENV_VERSION] == "42"
    assert pod["metadata"]["labels"][names.HUB_ACCESS_HUB_LABEL] == "true"
    assert hardening_problems(pod["spec"]) == []
    # The hub and its proxy (in their namespace, by Zero to JupyterHub's label) may reach it.
    peers = by[("NetworkPolicy", "alice-network")]["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "jupyterhub"}},
            "podSelector": {"matchLabels": {names.HUB_ACCESS_SINGLEUSER_LABEL: "true"}}} in peers


def test_a_plain_server_has_no_hub_parts():
    c = _children()[("StatefulSet", "alice")]["spec"]["template"]
    assert c["spec"]["containers"][0]["command"][:2] == ["jupyter", "server"]
    assert "envFrom" not in c["spec"]["containers"][0]
    assert names.JUPYTERHUB_ENV_VERSION not in (c["metadata"].get("annotations") or {})
    peers = _children()[("NetworkPolicy", "alice-network")]["spec"]["ingress"][0]["from"]
    assert not any(names.HUB_ACCESS_SINGLEUSER_LABEL in str(p) for p in peers)


@pytest.mark.parametrize("base_url", ["user/alice/", "/user/alice", "/user/a b/"])
def test_a_jupyterhub_base_url_is_a_path_ending_in_a_slash(base_url):
    with pytest.raises(ValueError):
        NotebookServerSpec.model_validate({"jupyterhub": {**HUB, "baseUrl": base_url}})
