"""The driver pod's Spark Connect server, run locally: queries, token auth, UI REST API."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from pyspark.errors.exceptions.connect import SparkConnectGrpcException
from pyspark.sql.connect.session import SparkSession

from sparkbook.build.launch import SERVER_TOKEN_ENV, connect_url

if TYPE_CHECKING:
    from tests.spark_server import ConnectServer

pytestmark = pytest.mark.workload


@pytest.fixture(autouse=True)
def _no_client_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pyspark client falls back to this variable and then insists on TLS.
    monkeypatch.delenv(SERVER_TOKEN_ENV, raising=False)


@pytest.fixture(scope="module")
def spark(spark_connect_server: ConnectServer) -> Iterator[SparkSession]:
    session = SparkSession.builder.remote(spark_connect_server.token_url).create()
    yield session
    session.stop()


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def test_range_count(spark: SparkSession) -> None:
    assert spark.range(100).count() == 100


def test_client_without_token_is_refused(spark_connect_server: ConnectServer) -> None:
    session = SparkSession.builder.remote(spark_connect_server.url).create()
    with pytest.raises(SparkConnectGrpcException, match="UNAUTHENTICATED"):
        session.range(1).count()


def test_client_with_wrong_token_is_refused(spark_connect_server: ConnectServer) -> None:
    url = connect_url(host=spark_connect_server.host, port=spark_connect_server.grpc_port, token="not-it")
    session = SparkSession.builder.remote(url).create()
    with pytest.raises(SparkConnectGrpcException, match="Invalid authentication token"):
        session.range(1).count()


def test_client_with_token_works(spark_connect_server: ConnectServer) -> None:
    # A fresh session, separate from the shared one, so the check does not depend on ordering.
    session = SparkSession.builder.remote(spark_connect_server.token_url).create()
    try:
        assert session.sql("SELECT 41 + 1 AS x").collect()[0].x == 42
    finally:
        session.stop()


def test_token_is_not_on_the_command_line(spark_connect_server: ConnectServer) -> None:
    assert not any(spark_connect_server.token in arg for arg in spark_connect_server.process.args)


def test_ui_rest_api_lists_the_application(
    spark: SparkSession, spark_connect_server: ConnectServer
) -> None:
    app_id = spark.conf.get("spark.app.id")
    apps = _get_json(f"{spark_connect_server.ui_url}/api/v1/applications")
    assert [a["id"] for a in apps] == [app_id]
    base = f"{spark_connect_server.ui_url}/api/v1/applications/{app_id}"
    # The endpoints idle detection will poll.
    assert isinstance(_get_json(f"{base}/jobs?status=running"), list)
    sessions = _get_json(f"{base}/connect/sessions")
    assert spark.session_id in {s["sessionId"] for s in sessions}
    assert isinstance(_get_json(f"{base}/connect/operations"), list)


def test_pod_command_is_what_ran(spark_connect_server: ConnectServer) -> None:
    """The server under test was started from the driver pod's own command, localized only."""
    from tests.spark_server import driver_container

    from sparkbook.build.launch import is_kubernetes_only, parse_connect_server_command

    pod_conf, _ = parse_connect_server_command(driver_container()["command"])
    ran = spark_connect_server.process.args
    ran_conf, _ = parse_connect_server_command(list(ran))
    assert ran_conf["spark.master"] == "local[2]"
    loopback = {"spark.connect.grpc.binding.port", "spark.ui.port", "spark.connect.grpc.binding.address",
                "spark.sql.warehouse.dir", "spark.driver.host"}
    for key, value in pod_conf.items():
        if key == "spark.master" or is_kubernetes_only(key) or key in loopback:
            continue
        assert ran_conf[key] == value, key
    assert ran_conf["spark.dynamicAllocation.maxExecutors"] == "10"
    assert ran_conf["spark.sql.shuffle.partitions"] == "64"
