"""The notebook magics' pure parts: flags, %%configure planning, df.show() parsing, masking,
the one-sentence failures, and that the notebook package stays clear of the operator."""

from __future__ import annotations

import subprocess
import sys

import pytest
from IPython.core.error import UsageError

from sparkbook.notebook import magics, startup
from sparkbook.notebook.magics import (
    DEFAULT_MAXROWS,
    PullArgs,
    allow_bodiless_cell,
    configure_message,
    parse_configure,
    parse_force,
    parse_send_args,
    parse_spark_args,
    parse_sql_args,
    plan_configure,
    split_show_output,
)


# -- %%sql / %%spark ------------------------------------------------------------------------------
def test_sql_defaults_match_sparkmagic() -> None:
    assert parse_sql_args("") == PullArgs(None, "take", DEFAULT_MAXROWS, 0.1, False, None)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("-o df -n 10", PullArgs(output="df", maxrows=10)),
        ("--output df --maxrows 10", PullArgs(output="df", maxrows=10)),
        ("-o df -n -1", PullArgs(output="df", maxrows=-1)),
        ("-q", PullArgs(quiet=True)),
        ("-q -o x", PullArgs(output="x", quiet=True)),
        ("-q false", PullArgs(quiet=False)),
        ("-m sample -r 0.25", PullArgs(samplemethod="sample", samplefraction=0.25)),
        ("--samplemethod SAMPLE --samplefraction 1", PullArgs(samplemethod="sample", samplefraction=1.0)),
        ("-m take -n 5", PullArgs(maxrows=5)),
        ("-c", PullArgs(coerce=True)),
        ("-c False", PullArgs(coerce=False)),
    ],
)
def test_sql_flags(line: str, expected: PullArgs) -> None:
    assert parse_sql_args(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-m random", "-m must be take or sample"),
        ("-m sample -r 0", "-r must be a fraction"),
        ("-r 1.5", "-r must be a fraction"),
        ("-o 1abc", "not a Python variable name"),
        ("-o class", "not a Python variable name"),
        ("-n many", "invalid int value"),
        ("--bogus", "unrecognized arguments"),
        ("-o 'unterminated", "No closing quotation"),
        ("-q maybe", "expected true or false"),
    ],
)
def test_sql_bad_flags_are_usage_errors(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_sql_args(line)
    assert str(info.value).startswith("%%sql: ")


def test_spark_has_no_quiet_flag() -> None:
    assert parse_spark_args("-o df -m sample -r 0.5 -n 100") == PullArgs(
        output="df", samplemethod="sample", samplefraction=0.5, maxrows=100
    )
    with pytest.raises(UsageError, match="unrecognized arguments: -q"):
        parse_spark_args("-q")


# -- %%send_to_spark, -f flags ------------------------------------------------------------------
def test_send_to_spark_flags() -> None:
    args = parse_send_args("-i top -t df -n top_sales -m 10")
    assert (args.input, args.vartype, args.name, args.maxrows) == ("top", "df", "top_sales", 10)
    plain = parse_send_args("-i word")
    assert (plain.vartype, plain.name, plain.maxrows) == ("str", "word", DEFAULT_MAXROWS)
    with pytest.raises(UsageError, match="-i VAR is required"):
        parse_send_args("-t df")
    with pytest.raises(UsageError, match="-t must be str or df"):
        parse_send_args("-i x -t list")


def test_force_flags() -> None:
    assert parse_force("%%cleanup", "-f") is True
    assert parse_force("%%cleanup", "") is False
    assert parse_force("%%delete", "-f -s 3", session=True) is True
    with pytest.raises(UsageError):
        parse_force("%%cleanup", "-s 3")


# -- %%configure --------------------------------------------------------------------------------
def test_configure_body_must_be_a_json_object() -> None:
    assert parse_configure("-f", '{"conf": {"a": 1}}') == (True, {"conf": {"a": 1}})
    assert parse_configure("", '{"driverMemory": "4g"}') == (False, {"driverMemory": "4g"})
    for body, message in [("", "must hold a JSON object"), ("{nope", "not valid JSON"), ("[1]", "JSON object"),
                          ('{"conf": [1]}', '"conf" must be an object')]:  # fmt: skip
        with pytest.raises(UsageError, match=message):
            parse_configure("", body)


def test_configure_plan_sorts_runtime_from_driver_settings() -> None:
    body = {
        "driverMemory": "4g",
        "executorCores": 2,
        "numExecutors": 3,
        "name": "livy-name",
        "kind": "pyspark",
        "pyFiles": ["a.py"],
        "wat": 1,
        "conf": {
            "spark.sql.shuffle.partitions": 7,
            "spark.sql.ansi.enabled": True,
            "spark.executor.memory": "8g",
            "spark.dynamicAllocation.maxExecutors": "20",
            "spark.executor.memoryOverhead": "1g",
            "spark.kubernetes.container.image": "x",
        },
    }
    plan = plan_configure(body, lambda key: key.startswith("spark.sql."))
    assert plan.runtime == {"spark.sql.shuffle.partitions": "7", "spark.sql.ansi.enabled": "true"}
    assert plan.needs_driver == [
        ("driverMemory", "4g", "spec.driver.memory"),
        ("executorCores", "2", "spec.executor.cores"),
        ("numExecutors", "3", "spec.executor.instances or spec.dynamicAllocation"),
        ("spark.executor.memory", "8g", "spec.executor.memory"),
        ("spark.dynamicAllocation.maxExecutors", "20", "spec.dynamicAllocation.maxExecutors"),
        ("spark.executor.memoryOverhead", "1g", "spec.sparkConf"),
        ("spark.kubernetes.container.image", "x", "set by Sparkbook itself"),
    ]
    assert plan.ignored == ["name", "kind"] and plan.unknown == ["wat"]
    assert [k for k, _ in plan.artifacts] == ["pyFiles"]

    message = configure_message(plan, applied=plan.runtime, session="nb-spark", force=True)
    lines = message.splitlines()
    assert lines[0] == "Applied now: spark.sql.shuffle.partitions=7, spark.sql.ansi.enabled=true."
    needs = lines[1]  # every driver setting named in one message, with the command to change them
    for key in ("driverMemory=4g", "executorCores=2", "numExecutors=3", "spark.executor.memoryOverhead=1g"):
        assert key in needs
    assert "`kubectl edit sparksession nb-spark`" in needs and "-f does not restart the driver" in needs
    assert "spark.addArtifacts" in message and "Ignored (Livy-only settings): name, kind." in message
    assert "Unknown keys, ignored: wat" in message


def test_configure_message_without_a_session_or_force() -> None:
    plan = plan_configure({"executorMemory": "2g"}, lambda key: False)
    message = configure_message(plan, applied={}, session=None, force=False)
    assert "kubectl edit sparksession <name>" in message and "-f" not in message
    assert configure_message(plan_configure({}, lambda k: True), applied={}, session="s", force=False) == (
        "Nothing to configure."
    )


# -- %%pretty -----------------------------------------------------------------------------------
def test_split_show_output_finds_tables() -> None:
    text = (
        "before\n"
        "+---+-----+\n"
        "| id| name|\n"
        "+---+-----+\n"
        "|  1|  ana|\n"
        "|  2|   bo|\n"
        "+---+-----+\n"
        "only showing top 2 rows\n"
    )
    assert split_show_output(text) == [
        "before",
        (["id", "name"], [["1", "ana"], ["2", "bo"]]),
        "only showing top 2 rows\n",
    ]
    assert split_show_output("+--+\nnot a table\n") == ["+--+\nnot a table\n"]
    assert "<td>ana</td>" in magics.table_html(["id", "name"], [["1", "ana"]])


# -- start-up: masking, sentences, the unconnected placeholder -----------------------------------
def test_mask_hides_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARK_REMOTE", "sc://h:15002/;authorization=Bearer%20s3cr3t-token")
    monkeypatch.setenv("SPARKBOOK_CONNECT_TOKEN", "other-s3cret")
    text = "url sc://h:15002/;authorization=Bearer%20s3cr3t-token;user_id=x header Bearer abc.def raw s3cr3t-token other-s3cret"
    masked = startup.mask(text)
    assert "s3cr3t" not in masked and "abc.def" not in masked
    assert "authorization=***;user_id=x" in masked and "Bearer ***" in masked
    assert startup.endpoint("sc://h:15002/;authorization=Bearer%20x") == "sc://h:15002"


class _FakeRpcError(Exception):
    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> object:
        return type("Code", (), {"name": self._code})()

    def details(self) -> str:
        return self._details


def _wrapped(code: str, details: str) -> Exception:
    try:
        try:
            raise _FakeRpcError(code, details)
        except _FakeRpcError as inner:
            raise RuntimeError("<_InactiveRpcError ... authorization=Bearer%20leak>") from inner
    except RuntimeError as outer:
        return outer


@pytest.mark.parametrize(
    ("code", "details", "expect"),
    [
        ("UNAVAILABLE", "failed to connect: Connection refused", "not reachable at sc://h:1 (connection refused)"),
        ("UNAVAILABLE", "DNS resolution failed for x", "(host name not found)"),
        ("UNAUTHENTICATED", "Invalid authentication token", "refused this notebook's token"),
        ("INTERNAL", "boom", "could not be reached at sc://h:1 (INTERNAL: boom)"),
    ],
)
def test_failures_are_one_sentence(code: str, details: str, expect: str) -> None:
    sentence = startup.describe_failure(_wrapped(code, details), where="sc://h:1", session="nb-spark")
    assert expect in sentence
    assert "`kubectl get sparksession nb-spark`" in sentence
    assert "\n" not in sentence and "leak" not in sentence
    timeout = startup.describe_failure(None, where="sc://h:1", session=None, timeout=15)
    assert "did not answer at sc://h:1 within 15 s" in timeout and "`kubectl get sparksessions`" in timeout


def test_in_local_mode_failures_point_at_sparkbook_local(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparkbook.names import LOCAL_ENV

    monkeypatch.setenv(LOCAL_ENV, "1")
    sentence = startup.describe_failure(_wrapped("UNAVAILABLE", "Connection refused"), where="sc://127.0.0.1:1",
                                        session="alice-spark")
    assert "the terminal that runs `sparkbook local`" in sentence and "kubectl" not in sentence
    timeout = startup.describe_failure(None, where="sc://127.0.0.1:1", session=None, timeout=15)
    assert "sparkbook local" in timeout and "kubectl" not in timeout


def test_unexpanded_token_needs_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPARKBOOK_SPARK_SESSION", "nb-spark")
    conn = startup.Connection("sc://nb-spark-connect.ns.svc:15002/;authorization=Bearer%20$(SPARKBOOK_CONNECT_TOKEN)")
    conn.begin()
    assert conn.session is None and conn.wait() is None
    assert "$(SPARKBOOK_CONNECT_TOKEN)" in conn.error and "`kubectl get sparksession nb-spark`" in conn.error
    namespace: dict = {}
    placeholder = startup.SparkUnavailable(conn, namespace)
    namespace["spark"] = placeholder
    with pytest.raises(startup.SparkUnavailableError, match=r"\$\(SPARKBOOK_CONNECT_TOKEN\)"):
        placeholder.range(3)
    with pytest.raises(AttributeError):
        placeholder._repr_html_  # noqa: B018 - display probing must not connect
    assert dir(placeholder) == [] and not placeholder and "not connected" in repr(placeholder)
    assert namespace["spark"] is placeholder
    assert "SPARK_REMOTE is not set" in (startup.Connection(None)._precheck() or "")


def test_bodiless_magic_cells_get_a_blank_body() -> None:
    assert allow_bodiless_cell(["%%info"]) == ["%%info\n", " \n"]
    assert allow_bodiless_cell(["%%send_to_spark -i x\n", "\n"]) == ["%%send_to_spark -i x\n", " \n"]
    assert allow_bodiless_cell(["%%sql\n"]) == ["%%sql\n"]  # a query is required: let IPython say so
    assert allow_bodiless_cell(["%%info\n", "x = 1\n"]) == ["%%info\n", "x = 1\n"]


def test_notebook_package_imports_nothing_of_the_operator() -> None:
    code = (
        "import sys\n"
        "import sparkbook.notebook, sparkbook.notebook.startup, sparkbook.notebook.magics\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('kopf', 'kubernetes', 'pydantic', 'aiohttp')\n"
        "       or m.startswith(('sparkbook.controller', 'sparkbook.kube', 'sparkbook.handlers', 'sparkbook.build',"
        " 'sparkbook.api'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_full_tracebacks_follow_the_environment_until_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from sparkbook.notebook import errors

    monkeypatch.delenv(errors.FULL_TRACEBACKS_ENV, raising=False)
    assert not errors.full_tracebacks()
    monkeypatch.setenv(errors.FULL_TRACEBACKS_ENV, "1")
    assert errors.full_tracebacks()
    try:
        errors.set_full_tracebacks(False)
        assert not errors.full_tracebacks()
    finally:
        errors.set_full_tracebacks(None)
    assert errors.full_tracebacks()


def test_help_lists_maxrows_and_wraps_between_words() -> None:
    from sparkbook.notebook.magics import HELP, help_text

    text = help_text()
    assert "--maxrows" in text
    assert all(len(line) <= 100 for line in text.splitlines())
    words = {w for _, desc in HELP for w in desc.split()}
    assert all(w in words for line in text.splitlines()[1:] if line.startswith("    ") for w in line.split())


def test_plural() -> None:
    assert startup.plural(1, "core") == "1 core" and startup.plural("1", "core") == "1 core"
    assert startup.plural(0, "row") == "0 rows" and startup.plural(3, "row") == "3 rows"
