"""The Scala and R kernels' pure parts: where their start-up comes from, what the ConfigMap carries,
the Scala kernel's class path and error names, and that a non-editable install ships their sources
(the kernels themselves run in tests/workload/test_kernels.py)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

from sparkbook import names
from sparkbook.build.notebook import STARTUP_FILE, STARTUP_PY, startup_configmap
from sparkbook.kernels import scala, startup

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "sparkbook"
OWNER = {"apiVersion": "sparkbook.io/v1alpha1", "kind": "NotebookServer",
         "metadata": {"name": "nb", "namespace": "team-a", "uid": "u1"}}


def test_the_kernels_read_their_start_up_where_the_pod_mounts_the_configmap() -> None:
    assert startup.DEFAULT_DIR == f"{names.NOTEBOOK_STARTUP_DIR}/startup"


def test_the_start_up_configmap_carries_all_three_kernels() -> None:
    data = startup_configmap(owner=OWNER)["data"]
    assert data == {STARTUP_FILE: STARTUP_PY, startup.SCALA_FILE: startup.SCALA, startup.R_FILE: startup.R}
    # IPython runs every .py and .ipy file in its start-up directory: the others must not be either.
    assert [n for n in data if n.endswith((".py", ".ipy"))] == [STARTUP_FILE]
    assert "sparkbook.Spark.session()" in data[startup.SCALA_FILE] and "spark_begin()" in data[startup.R_FILE]


def test_start_up_falls_back_to_the_built_in_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(startup.DIR_ENV, str(tmp_path))
    assert startup.read(startup.SCALA_FILE, "built in") == "built in"
    (tmp_path / startup.SCALA_FILE).write_text("val x = 1\n")
    assert startup.read(startup.SCALA_FILE, "built in") == "val x = 1\n"


def test_the_scala_class_path_is_the_connect_client_without_classic_spark(tmp_path: Path) -> None:
    (tmp_path / "connect-repl").mkdir()
    for jar in ["spark-sql_2.13-4.3.0.jar", "spark-connect_2.13-4.3.0.jar", "spark-sql-api_2.13-4.3.0.jar",
                "spark-connect-common_2.13-4.3.0.jar", "scala-library-2.13.18.jar", "scala-compiler-2.13.18.jar"]:
        (tmp_path / jar).write_bytes(b"")
    parts = scala.classpath(tmp_path, tmp_path / "repl.jar").split(":")
    assert parts[0] == str(tmp_path / "repl.jar") and parts[1] == str(tmp_path / "connect-repl" / "*")
    assert sorted(Path(p).name for p in parts[2:]) == ["scala-compiler-2.13.18.jar", "scala-library-2.13.18.jar"]
    with pytest.raises(RuntimeError, match="no Spark Connect Scala client"):
        scala.classpath(tmp_path / "connect-repl", None)


def test_the_jvm_gets_the_opens_arrow_needs() -> None:
    assert "--add-opens=java.base/java.nio=ALL-UNNAMED" in scala.JAVA_OPTS


@pytest.mark.parametrize(("output", "expected"), [
    ("       sprak.range(3)\n       ^\nerror: not found: value sprak\n", ("CompileError", "not found: value sprak")),
    ("java.lang.ArithmeticException: / by zero\n  at ...\n", ("ArithmeticException", "/ by zero")),
    ("org.apache.spark.sql.AnalysisException: [TABLE_OR_VIEW_NOT_FOUND] nope\n",
     ("AnalysisException", "[TABLE_OR_VIEW_NOT_FOUND] nope")),
    ("something odd\n", ("Error", "something odd")),
    ("", ("Error", "the cell failed")),
])
def test_a_failed_scala_cell_is_named_by_its_exception(output: str, expected: tuple[str, str]) -> None:
    assert scala._error_name(output) == expected


def test_a_non_editable_install_ships_the_kernels_sources() -> None:
    """The image installs the package with pip, not from the tree: every non-Python file under
    kernels/ must be in package-data, or `sparkbook kernels install` fails there."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["sparkbook"]
    files = [p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "kernels").rglob("*")
             if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert files, "no kernel sources found"
    assert [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)] == []


def test_the_notebook_image_installs_both_kernels() -> None:
    dockerfile = (ROOT / "images" / "notebook" / "Dockerfile").read_text()
    ensure_r = (ROOT / "scripts" / "ensure-r.sh").read_text()
    (packages,) = [line for line in ensure_r.splitlines() if line.startswith("PACKAGES=(")]
    for package in packages[len("PACKAGES=("):-1].split():
        assert package in dockerfile, package  # the same R as `make kernels` installs
    assert "openjdk-17-jre-headless" in dockerfile
    assert "sparkbook kernels install --prefix /usr/local" in dockerfile
