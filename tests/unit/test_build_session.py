"""SparkSession builders: golden manifests and the properties every child must have."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from sparkbook import names
from sparkbook.api.sparksession import SparkSessionSpec
from sparkbook.build.session import driver_pod, executor_pod_template, session_children
from sparkbook.build.spark import spark_conf
from sparkbook.render import RenderError, render_stream
from sparkbook.settings import Settings
from tests.pod_rules import hardening_problems

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
OWNER = {
    "apiVersion": names.API_VERSION,
    "kind": "SparkSession",
    "metadata": {"name": "analytics", "namespace": "team-a", "uid": "1234"},
}


def _children(**spec: Any) -> list[dict[str, Any]]:
    return session_children(owner=OWNER, spec=SparkSessionSpec.model_validate(spec), image="img:1", token="t0k")


@pytest.mark.parametrize("example", ["sparksession.yaml"])
def test_render_matches_golden(example: str):
    """`sparkbook render` of the example equals the reviewed golden file (UPDATE_GOLDEN=1 rewrites it)."""
    rendered = render_stream((ROOT / "examples" / example).read_text(), settings=Settings())
    golden = GOLDEN / example
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()


def test_children_are_the_documented_set_each_owned():
    kinds = [(c["kind"], c["metadata"]["name"]) for c in _children()]
    assert kinds == [
        ("NetworkPolicy", "analytics-network"),
        ("ServiceAccount", "analytics-spark"),
        ("Role", "analytics-spark"),
        ("RoleBinding", "analytics-spark"),
        ("Secret", "analytics-connect-token"),
        ("ConfigMap", "analytics-executor-template"),
        ("Service", "analytics-driver-svc"),
        ("Service", "analytics-connect"),
        ("Service", "analytics-ui"),
        ("Pod", "analytics-driver"),
    ]
    for child in _children():
        (ref,) = child["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": names.API_VERSION,
            "kind": "SparkSession",
            "name": "analytics",
            "uid": "1234",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert child["metadata"]["labels"][names.SESSION_LABEL] == "analytics"


def test_suspended_session_has_no_driver_pod():
    assert "Pod" not in [c["kind"] for c in _children(suspend=True)]


def test_driver_and_executor_pods_are_restricted():
    spec = SparkSessionSpec()
    # The driver talks to the API server (Spark creates its executors); executors never do.
    assert hardening_problems(driver_pod(owner=OWNER, spec=spec, image="img:1")["spec"], needs_api_token=True) == []
    assert hardening_problems(executor_pod_template(name="analytics", spec=spec)["spec"]) == []


def test_driver_runs_connect_server_in_client_mode_against_the_cluster():
    pod = driver_pod(owner=OWNER, spec=SparkSessionSpec(), image="img:1")
    (container,) = pod["spec"]["containers"]
    cmd = container["command"]
    assert cmd[0] == "/opt/spark/bin/spark-submit"
    assert cmd[cmd.index("--class") + 1] == "org.apache.spark.sql.connect.service.SparkConnectServer"
    assert "--conf" in cmd and "spark.master=k8s://https://kubernetes.default.svc" in cmd
    assert "spark.submit.deployMode=client" in cmd
    assert "spark.kubernetes.driver.pod.name=analytics-driver" in cmd
    assert "spark.driver.host=analytics-driver-svc.team-a.svc" in cmd
    # The token comes from the Secret, never from the command line or a literal env value.
    (token_env,) = [e for e in container["env"] if e["name"] == names.CONNECT_TOKEN_ENV]
    assert token_env["valueFrom"]["secretKeyRef"] == {"name": "analytics-connect-token", "key": "token"}
    assert not any("token" in arg.lower() for arg in cmd)
    # heap 2g + max(384Mi, 10%) overhead
    assert container["resources"]["requests"]["memory"] == "2432Mi"
    assert pod["metadata"]["annotations"][names.CONFIG_HASH]


def test_spark_conf_dynamic_allocation_from_spec_and_user_conf_last():
    spec = SparkSessionSpec.model_validate(
        {
            "dynamicAllocation": {"minExecutors": 1, "initialExecutors": 2, "maxExecutors": 5, "executorIdleTimeout": "2m"},
            "sparkConf": {"spark.sql.shuffle.partitions": "64", "spark.executor.memoryOverhead": "1g"},
        }
    )
    conf = spark_conf(name="s", namespace="ns", spec=spec, image="img")
    assert conf["spark.dynamicAllocation.enabled"] == "true"
    assert conf["spark.dynamicAllocation.shuffleTracking.enabled"] == "true"
    assert conf["spark.dynamicAllocation.shuffleTracking.timeout"] == "600s"
    assert conf["spark.dynamicAllocation.minExecutors"] == "1"
    assert conf["spark.dynamicAllocation.initialExecutors"] == "2"
    assert conf["spark.dynamicAllocation.maxExecutors"] == "5"
    assert conf["spark.dynamicAllocation.executorIdleTimeout"] == "120s"
    assert "spark.executor.instances" not in conf
    assert conf[f"spark.kubernetes.executor.label.{names.SESSION_LABEL}"] == "s"
    assert list(conf)[-2:] == ["spark.sql.shuffle.partitions", "spark.executor.memoryOverhead"]


def test_static_executors_when_dynamic_allocation_is_off():
    spec = SparkSessionSpec.model_validate({"dynamicAllocation": {"enabled": False}, "executor": {"instances": 3}})
    conf = spark_conf(name="s", namespace="ns", spec=spec, image="img")
    assert conf["spark.dynamicAllocation.enabled"] == "false"
    assert conf["spark.executor.instances"] == "3"
    assert not any(k.startswith("spark.dynamicAllocation.m") for k in conf)


def test_spec_change_that_needs_a_new_driver_changes_the_config_hash():
    base = driver_pod(owner=OWNER, spec=SparkSessionSpec(), image="img:1")
    same = driver_pod(owner=OWNER, spec=SparkSessionSpec(idleTimeout="1h"), image="img:1")
    bigger = driver_pod(owner=OWNER, spec=SparkSessionSpec.model_validate({"executor": {"memory": "4g"}}), image="img:1")
    h = lambda p: p["metadata"]["annotations"][names.CONFIG_HASH]  # noqa: E731
    assert h(base) == h(same)
    assert h(base) != h(bigger)


def test_long_names_stay_valid_dns_labels():
    long = "a" * 63
    owner = {**OWNER, "metadata": {**OWNER["metadata"], "name": long}}
    for child in session_children(owner=owner, spec=SparkSessionSpec(), image="i", token="t"):
        assert names.is_dns1035_label(child["metadata"]["name"]), child["metadata"]["name"]


def test_render_never_prints_a_token_and_rejects_bad_input():
    text = (ROOT / "examples" / "sparksession.yaml").read_text()
    out = render_stream(text, settings=Settings())
    secret = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Secret"][0]
    assert secret["stringData"]["token"].startswith("<generated")
    bad = text.replace("maxExecutors: 10", "maxExecutors: 0")
    with pytest.raises(RenderError, match="maxExecutors"):
        render_stream(bad, settings=Settings())
    reserved = text.replace('spark.sql.shuffle.partitions: "64"', 'spark.master: "local[*]"')
    with pytest.raises(RenderError, match="spark.master"):
        render_stream(reserved, settings=Settings())
