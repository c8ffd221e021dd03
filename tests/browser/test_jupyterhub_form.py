"""The hub's spawn page in Chromium: a user logs in, picks "Spark (Static)" and sets its Spark
inputs, a bound the profile sets is refused on the page, the progress page follows the server,
and the browser lands in JupyterLab through the hub's proxy and OAuth. The operator runs against
the API emulator; the pod is played by a real jupyterhub-singleuser (tests/jupyterhub_server.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sparkbook import names
from sparkbook.names import NotebookNames
from tests.api.conftest import wait_for
from tests.api.conftest import emulator, kubeconfig, kubectl, namespace, operator  # noqa: F401 - fixtures
from tests.jupyterhub_server import PlayedPod, running_hub

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.workload, pytest.mark.timeout(600)]


def test_the_spawn_form_in_chromium_lands_in_jupyterlab(emulator, operator, kubectl, namespace,  # noqa: F811
                                                         kubeconfig, context: Any, spark_connect_server,  # noqa: F811
                                                         tmp_path: Path) -> None:
    kubectl("apply", "--server-side", "-f", str(ROOT / "manifests" / "profiles.yaml"))
    player = PlayedPod(emulator, namespace, "jupyter-fay", tmp_path / "pod", spark_connect_server.token_url)
    player.start()
    try:
        # This hub deletes servers on stop (the other hub tests suspend them).
        with running_hub(kubeconfig=kubeconfig, work=tmp_path / "hub", namespace=namespace,
                         extra='c.NotebookServerSpawner.stop_action = "delete"') as hub:
            page = context.new_page()
            page.goto(f"{hub.url}/hub/login")
            page.fill("#username_input", "fay")
            page.fill("#password_input", "pw")
            page.click("#login_submit")
            page.goto(f"{hub.url}/hub/spawn")
            # One choice per profile, the default preselected; each shows only the inputs it allows.
            assert page.locator("input[name=profile]").count() == 5
            assert page.locator("input[name=profile][value=spark-dynamic]").is_checked()
            assert page.locator("[name='spark-dynamic--spark.session.dynamicAllocation.maxExecutors']").count() == 1
            assert page.locator("[name='spark-static--spark.session.dynamicAllocation.maxExecutors']").count() == 0
            page.check("input[name=profile][value=spark-static]")
            page.fill("[name='spark-static--spark.session.executor.memory']", "99g")
            page.click("input[type=submit], button[type=submit]")
            # Refused on the page, with the field and the bound; nothing was made.
            page.wait_for_selector("text=/at most/", timeout=30_000)
            assert "spark.session.executor.memory" in page.content()
            assert emulator.get(names.API_VERSION, "notebookservers", namespace, "jupyter-fay") is None

            page.check("input[name=profile][value=spark-static]")
            page.fill("[name='spark-static--spark.session.executor.memory']", "2g")
            page.click("input[type=submit], button[type=submit]")
            # The progress page, then JupyterLab under the user's prefix.
            page.wait_for_url(re.compile(r".*/user/fay/lab.*"), timeout=180_000)
            page.wait_for_selector(".jp-Launcher, #jp-main-dock-panel", timeout=120_000)
            server = emulator.get(names.API_VERSION, "notebookservers", namespace, "jupyter-fay")
            assert server["spec"]["profile"] == "spark-static"
            assert server["spec"]["spark"]["session"]["executor"]["memory"] == "2g"
            assert "JupyterLab" in page.title()

            # stop_action "delete": the NotebookServer goes, the user's PVC (retainOnDelete) stays.
            assert hub.api("DELETE", "/users/fay/server").status_code in (202, 204)
            wait_for(lambda: not hub.user("fay")["servers"], timeout=60, what="stopped")
            assert emulator.get(names.API_VERSION, "notebookservers", namespace, "jupyter-fay") is None
            assert emulator.get("v1", "persistentvolumeclaims", namespace,
                                NotebookNames("jupyter-fay").pvc) is not None
    finally:
        player.stopped.set()
        player.join(timeout=30)
    assert player.error is None, player.error
