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


@pytest.mark.parametrize("example", ["sparksession.yaml", "sparksession-history.yaml"])
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


# --- event logs ---------------------------------------------------------------------------------

from sparkbook.build.spark import EventLogDefaults, EventLogError, event_log_target  # noqa: E402
from sparkbook.build.launch import localize_conf, parse_connect_server_command  # noqa: E402


def _driver_with(event_log: dict[str, Any] | None, defaults: EventLogDefaults = EventLogDefaults(),
                 **spec: Any) -> dict[str, Any]:
    if event_log is not None:
        spec["eventLog"] = event_log
    parsed = SparkSessionSpec.model_validate(spec)
    target = event_log_target(parsed.event_log, defaults)
    return driver_pod(owner=OWNER, spec=parsed, image="img:1", event_log=target)


def _conf(pod: dict[str, Any]) -> dict[str, str]:
    return parse_connect_server_command(pod["spec"]["containers"][0]["command"])[0]


def test_event_log_on_a_claim_mounts_it_and_names_the_application_after_the_pod():
    pod = _driver_with({"persistentVolumeClaim": "spark-events", "maxFileSize": "64m"})
    conf = _conf(pod)
    assert conf["spark.eventLog.enabled"] == "true"
    assert conf["spark.eventLog.dir"] == "file:///spark-events"
    assert conf["spark.eventLog.rolling.enabled"] == "true"
    assert conf["spark.eventLog.rolling.maxFileSize"] == "64m"
    assert conf["spark.eventLog.compress"] == "true"
    assert conf["spark.eventLog.compression.codec"] == "zstd"
    assert conf["spark.app.id"] == f"spark-$({names.DRIVER_UID_ENV})"
    container = pod["spec"]["containers"][0]
    env_names = [e["name"] for e in container["env"]]
    # Kubernetes expands $(VAR) in a command only from variables of the container's env.
    assert {"name": names.DRIVER_UID_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}} in container["env"]
    assert env_names.index(names.DRIVER_UID_ENV) >= 0
    assert {"name": "event-log", "persistentVolumeClaim": {"claimName": "spark-events"}} in pod["spec"]["volumes"]
    assert {"name": "event-log", "mountPath": "/spark-events"} in container["volumeMounts"]
    assert pod["metadata"]["labels"][names.EVENT_LOG_LABEL] == "true"
    assert "envFrom" not in container
    # Written as the image's non-root user, with the restricted profile intact.
    assert pod["spec"]["securityContext"]["runAsUser"] == names.SPARK_UID
    assert pod["spec"]["securityContext"]["fsGroup"] == names.SPARK_UID
    assert hardening_problems(pod["spec"], needs_api_token=True) == []


def test_event_log_in_an_object_store_takes_credentials_from_a_secret():
    pod = _driver_with({"url": "s3a://logs/spark-events", "credentialsSecret": "s3-credentials"})
    assert _conf(pod)["spark.eventLog.dir"] == "s3a://logs/spark-events"
    container = pod["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    assert not any(v.get("persistentVolumeClaim") for v in pod["spec"]["volumes"])
    # The credentials never appear in the command or the conf.
    assert "s3-credentials" not in " ".join(container["command"])


def test_no_event_log_by_default_and_the_driver_is_unchanged():
    plain = driver_pod(owner=OWNER, spec=SparkSessionSpec(), image="img:1")
    assert _driver_with(None) == plain
    assert not any(k.startswith("spark.eventLog") for k in _conf(plain))
    assert names.EVENT_LOG_LABEL not in plain["metadata"]["labels"]


def test_operator_default_applies_unless_the_session_says_otherwise():
    defaults = EventLogDefaults(enabled=True, url="s3a://team/logs", credentials_secret="creds")
    assert _conf(_driver_with(None, defaults))["spark.eventLog.dir"] == "s3a://team/logs"
    assert _driver_with(None, defaults)["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "creds"}}]
    # enabled: true with no place of its own: the operator's place
    assert _conf(_driver_with({"enabled": True}, defaults))["spark.eventLog.dir"] == "s3a://team/logs"
    # its own claim replaces the operator's URL (and its credentials)
    own = _driver_with({"persistentVolumeClaim": "mine"}, defaults)
    assert _conf(own)["spark.eventLog.dir"] == "file:///spark-events"
    assert "envFrom" not in own["spec"]["containers"][0]
    # switched off for this session
    assert "spark.eventLog.enabled" not in _conf(_driver_with({"enabled": False}, defaults))


def test_event_log_asked_for_with_nowhere_to_go_is_an_error_that_says_what_to_set():
    with pytest.raises(EventLogError, match="persistentVolumeClaim or spec.eventLog.url"):
        event_log_target(SparkSessionSpec.model_validate({"eventLog": {"enabled": True}}).event_log,
                         EventLogDefaults())
    with pytest.raises(EventLogError):
        event_log_target(None, EventLogDefaults(enabled=True))


@pytest.mark.parametrize("event_log, message", [
    ({"persistentVolumeClaim": "a", "url": "s3a://b/c"}, "not both"),
    ({"persistentVolumeClaim": "a", "credentialsSecret": "s"}, "goes with url"),
    ({"url": "no-scheme"}, "should match pattern"),
    ({"url": "s3a://b/c", "maxFileSize": "5m"}, "should match pattern"),
])
def test_bad_event_log_specs_are_refused(event_log, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        SparkSessionSpec.model_validate({"eventLog": event_log})


def test_user_spark_conf_still_has_the_last_word_on_the_event_log():
    pod = _driver_with({"persistentVolumeClaim": "x"}, sparkConf={"spark.eventLog.rolling.maxFileSize": "256m"})
    assert _conf(pod)["spark.eventLog.rolling.maxFileSize"] == "256m"


def test_the_pod_uid_placeholder_does_not_leave_kubernetes():
    conf = _conf(_driver_with({"persistentVolumeClaim": "x"}))
    local = localize_conf(conf)
    assert "spark.app.id" not in local
    assert local["spark.eventLog.dir"] == "file:///spark-events"


def test_render_reports_event_logs_with_nowhere_to_go():
    doc = "apiVersion: sparkbook.io/v1alpha1\nkind: SparkSession\nmetadata: {name: s}\nspec: {eventLog: {enabled: true}}\n"
    with pytest.raises(RenderError, match="EventLogNowhere"):
        render_stream(doc, settings=Settings())
    out = render_stream(doc, settings=Settings(event_log_enabled=True, event_log_pvc="shared"))
    assert "claimName: shared" in out


def test_settings_read_the_event_log_and_history_server_from_the_environment():
    s = Settings.from_env({"SPARKBOOK_EVENT_LOG_ENABLED": "true", "SPARKBOOK_EVENT_LOG_URL": "s3a://b/l",
                           "SPARKBOOK_EVENT_LOG_CREDENTIALS_SECRET": "c",
                           "SPARKBOOK_HISTORY_SERVER_URL": "http://h.ops.svc:18080"})
    assert s.event_log_defaults == EventLogDefaults(enabled=True, url="s3a://b/l", credentials_secret="c")
    assert s.history_server_url == "http://h.ops.svc:18080"
    assert Settings.from_env({}).event_log_defaults == EventLogDefaults()
