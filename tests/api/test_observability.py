"""What a platform engineer sees of a running operator: Prometheus metrics, Events, JSON logs."""

from __future__ import annotations

import json
import urllib.request

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import ROOT, event_seen, kubelet_runs, wait_for


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_and_events_after_reconciling(emulator, operator, kubectl, namespace):
    doc = yaml.safe_load((ROOT / "examples" / "sparksession.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    wait_for(lambda: emulator.get("v1", "pods", namespace, "analytics-driver"), what="driver")
    kubelet_runs(emulator, namespace, "analytics-driver")
    wait_for(lambda: ((emulator.get("sparkbook.io/v1alpha1", "sparksessions", namespace, "analytics") or {})
                      .get("status") or {}).get("phase") == "Running", what="Running")
    samples = wait_for(lambda: (s := scrape(operator.metrics_url))
                       and value(s, "sparkbook_resources", kind="SparkSession", phase="Running") >= 1 and s,
                       what="metrics show the Running session")
    assert value(samples, "sparkbook_reconciles_total", kind="SparkSession", result="ok") >= 2
    assert value(samples, "sparkbook_reconcile_duration_seconds_count", kind="SparkSession") >= 2
    assert value(samples, "sparkbook_executors", namespace=namespace, session="analytics", state="running") == 0
    assert value(samples, "sparkbook_api_requests_total", method="POST", call="create Pod") >= 1
    assert value(samples, "sparkbook_api_requests_total", method="PATCH", call="status SparkSession") >= 1
    for kind in ("SparkSession", "NotebookServer", "Pod", "Secret"):
        assert value(samples, "sparkbook_watch_synced", kind=kind) == 1
        assert value(samples, "sparkbook_watch_lists_total", kind=kind) >= 1
    assert value(samples, "sparkbook_cached_objects", kind="SparkSession") >= 1
    assert value(samples, "sparkbook_cached_objects", kind="Pod") >= 1
    assert value(samples, "sparkbook_cached_bytes", kind="SparkSession") > 500  # a session's spec and status
    assert ("sparkbook_workqueue_depth", ()) in samples
    running = event_seen(emulator, namespace, lambda e: e["reason"] == "Running")
    events = emulator.list("v1", "events", namespace=namespace)
    reasons = [e["reason"] for e in events if e["involvedObject"]["name"] == "analytics"]
    assert "Starting" in reasons and "Running" in reasons
    assert running["type"] == "Normal" and "Spark Connect is serving" in running["message"]
    assert running["involvedObject"]["kind"] == "SparkSession"


def test_logs_can_be_json(kubeconfig, tmp_path):
    """`sparkbook run --log-format json`: every line a log pipeline reads is one JSON object."""
    import os
    import subprocess
    import sys
    import time

    from tests.api.conftest import free_port

    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "SPARKBOOK_METRICS_PORT": str(free_port())}
    proc = subprocess.Popen([sys.executable, "-m", "sparkbook.cli", "run", "--standalone", "--log-format", "json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Until the start-up line (a fixed sleep was too short on a loaded machine), then a little more.
    seen: list[str] = []
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "sparkbook operator started" in line:
                time.sleep(1)
                break
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    lines = [line for line in "".join(seen).splitlines() + out.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert any(e["message"].startswith("sparkbook operator started") for e in entries), lines
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
