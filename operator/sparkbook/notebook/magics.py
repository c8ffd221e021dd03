"""sparkmagic-compatible cell magics over Spark Connect, where all Python runs in the kernel.

sparkmagic ran two interpreters: a local one (``%%local``) and a remote one behind Livy (plain
cells, ``%%spark``), and ``-o VAR`` copied a remote DataFrame into the local interpreter as
pandas. Here there is one Python process talking to Spark through ``spark``, so the flags keep
their meaning but both "sides" live in the same kernel.

The ``%%local`` layer
    The pandas copies made by ``-o`` live in a separate dict, :attr:`SparkbookMagics.local_ns`
    ("the local side"). Plain cells and ``%%spark`` cells run in the user namespace as usual.
    A ``%%local`` cell also runs in the user namespace, but for its duration every name whose
    user-namespace value is a *Spark* DataFrame and that has a pandas copy in ``local_ns`` is
    swapped to the copy; afterwards the (possibly rebound or deleted) value is written back to
    ``local_ns`` and the Spark DataFrame is put back. So after ``%%spark -o df``:

    - a ``%%local`` cell sees pandas ``df`` (and may reassign it: the next ``%%local`` cell
      sees its version), while
    - plain and ``%%spark`` cells keep seeing the Spark DataFrame ``df``.

    When the name is *not* a Spark DataFrame in the user namespace (``%%sql -o result``: there
    is no Spark object of that name), the pandas frame is put in the user namespace too, and
    every kind of cell sees it. Anything else a ``%%local`` cell defines (``fig``, imports)
    stays in the user namespace: it is one process, and hiding it would help nobody.

    Swapping around the cell, rather than executing ``%%local`` cells in a separate dict
    layered over the user namespace, keeps everything IPython gives a cell working unchanged
    (``%matplotlib``, ``!cmd``, ``display``, ``get_ipython()``, functions that see globals),
    and leaves no second namespace to drift apart from the first.

Errors
    Problems with a magic's own input raise ``UsageError`` (one line, IPython's convention).
    Spark errors from ``%%sql`` and the other magics, and using ``spark`` while it is
    unreachable, raise :class:`~sparkbook.notebook.startup.SparkbookError`; a custom exception
    handler shows those as ``<ErrorClass>: <message>`` without a traceback and marks the cell
    failed (so "Run all" stops there, as it should). A pyspark exception from any other cell
    (``df.select('nope').show()``) is shown short too: its class, message and the user's own
    frames (:mod:`.errors`). ``SPARKBOOK_FULL_TRACEBACKS=1`` or ``%sparkbook traceback full``
    shows full tracebacks instead. Other Python errors keep ordinary tracebacks.

The argument parsers (:mod:`.args`), the ``%%configure`` planning (:mod:`.configure`), the
tables (:mod:`.tables`), the short errors (:mod:`.errors`) and the %%sql result widget (:mod:`.viz`)
live in their own modules;
this one holds the magics. Nothing here is imported back by those modules or by :mod:`.startup`.
"""


from __future__ import annotations

import ast
import html
import json
import os
import re
import textwrap
import urllib.request
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class

from sparkbook import names
from sparkbook.notebook import errors, progress, startup, viz
from sparkbook.notebook.args import (  # noqa: F401 - the parsers are part of this module's API
    DEFAULT_MAXROWS,
    DEFAULT_SAMPLEFRACTION,
    SAMPLE_METHODS,
    PullArgs,
    SendArgs,
    parse_configure,
    parse_force,
    parse_send_args,
    parse_spark_args,
    parse_sql_args,
)
from sparkbook.notebook.configure import (  # noqa: F401
    CONF_FIELDS,
    LIVY_ARTIFACTS,
    LIVY_IGNORED,
    LIVY_SESSION_FIELDS,
    ConfigurePlan,
    configure_message,
    plan_configure,
)
from sparkbook.notebook.errors import (  # noqa: F401
    QUERY_CONTEXT_LOGGERS,
    SparkError,
    _short_error_handler,
    spark_error,
    spark_errors,
)
from sparkbook.notebook.startup import SparkbookError, mask
from sparkbook.notebook.tables import (  # noqa: F401
    is_pandas_dataframe,
    is_spark_dataframe,
    pull,
    split_show_output,
    table_html,
)

_MISSING = object()


# --------------------------------------------------------------------------------------------
# The magics
# --------------------------------------------------------------------------------------------
HELP = [
    ("%%sql [-o VAR] [-q] [-m take|sample] [-n|--maxrows N] [-r|--samplefraction F]",
     "run Spark SQL and show the result; -o keeps it as pandas VAR; -q shows nothing; -n/--maxrows N: at most N rows "
     "(default 2500, -1 = all); -m sample -r F: a random fraction F instead of the first rows"),
    ("%%spark [-o VAR] [-m take|sample] [-n|--maxrows N] [-r|--samplefraction F]",
     "run the cell as Python against `spark`; -o copies the Spark DataFrame VAR to %%local as pandas "
     "(-n/--maxrows, -m and -r as for %%sql)"),
    ("%%local", "run the cell with the -o pandas copies under their names (the Spark objects stay for other cells)"),
    ("%%send_to_spark -i VAR [-t str|df] [-n NAME] [-m MAXROWS]", "turn a local string or pandas DataFrame into a Spark value / DataFrame NAME"),
    ("%%configure [-f] {json}", "Livy-style settings: spark.sql.* conf applies now; driver/executor sizes need a SparkSession change"),
    ("%%info", "application id, Spark version, executors, Spark UI link"),
    ("%%logs", "where the driver and executor logs are"),
    ("%%pretty", "run the cell and render df.show() output as HTML tables"),
    ("%%cleanup, %%delete", "no-ops: Spark sessions are SparkSession resources, not per-notebook Livy sessions"),
    ("%sparkbook traceback full|short", "Spark errors in full (JVM trace included) or short (the default)"),
    ("%sparkbook progress on|off", "live Spark progress and a Spark UI link per job under each cell (on by default)"),
    ("%sparkbook autoviz on|off", "%%sql and %%local pandas results as a table with Pie/Scatter/Line/Area/Bar "
     "charts (the default) or plain pandas tables (SPARKBOOK_AUTOVIZ=0: off from the start)"),
    ("%%help", "this list"),
]


HELP_WIDTH = 100


def help_text(width: int = HELP_WIDTH) -> str:
    """%%help: each magic on its line, its description under it, wrapped between words."""
    out: list[str] = []
    for magic, desc in HELP:
        out.append(magic)
        out.extend(textwrap.wrap(desc, width=width, initial_indent="    ", subsequent_indent="    ",
                                 break_long_words=False, break_on_hyphens=False))
    return "\n".join(out)


@magics_class
class SparkbookMagics(Magics):
    """The sparkmagic magics, over the kernel's Spark Connect session ``spark``."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.local_ns: dict[str, Any] = {}  # the %%local side: pandas copies made by -o

    # -- plumbing ----------------------------------------------------------------------------
    @property
    def user_ns(self) -> dict[str, Any]:
        return self.shell.user_ns

    def _spark(self) -> Any:
        """The session in ``spark``; connects (bounded) if it is the unreachable placeholder."""
        __tracebackhide__ = True
        obj = self.user_ns.get("spark")
        if isinstance(obj, startup.SparkUnavailable):
            return obj._sparkbook_connect()
        if obj is not None:
            return obj
        conn = startup.current_connection()
        if conn is None:
            conn = startup.Connection.from_env()
            startup._CONNECTION = conn
            conn.begin()
        session = conn.retry()
        if session is None:
            raise startup.SparkUnavailableError(conn.error or "Spark is not connected.")
        self.user_ns["spark"] = session
        return session

    def _run(self, cell: str) -> Any:
        """Run ``cell`` as an IPython cell body in the user namespace; the last expression's value."""
        __tracebackhide__ = True
        shell = self.shell
        code = shell.transform_cell(cell)
        filename = shell.compile.cache(code, shell.execution_count, raw_code=cell)
        tree = ast.parse(code, filename=filename)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr) and not code.rstrip().endswith(";"):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec", dont_inherit=True), shell.user_ns)
        if last is not None:
            return eval(compile(last, filename, "eval", dont_inherit=True), shell.user_ns)
        return None

    def _pull(self, df: Any, args: PullArgs) -> Any:
        __tracebackhide__ = True
        with spark_errors():
            return pull(df, args)

    def _keep_local(self, name: str, frame: Any, *, quiet: bool) -> None:
        """Store a pulled pandas frame: always for %%local, in the user namespace unless that
        holds a Spark DataFrame of the same name (which plain cells keep seeing)."""
        self.local_ns[name] = frame
        if is_spark_dataframe(self.user_ns.get(name)):
            if not quiet:
                print(f"{name} stays the Spark DataFrame in plain and %%spark cells; %%local cells see the pandas copy.")
        else:
            self.user_ns[name] = frame

    def _local_value(self, name: str) -> Any:
        """What a %%local cell would see under ``name``."""
        current = self.user_ns.get(name, _MISSING)
        if name in self.local_ns and (current is _MISSING or is_spark_dataframe(current)):
            return self.local_ns[name]
        if current is _MISSING:
            raise UsageError(f"no local variable named {name}")
        return current

    # -- %%sql -------------------------------------------------------------------------------
    @cell_magic
    def sql(self, line: str, cell: str = "") -> Any:
        """%%sql [-o VAR] [-q] [-m take|sample] [-n N] [-r F]: run Spark SQL, show it as a table."""
        __tracebackhide__ = True
        args = parse_sql_args(line)
        query = (cell or "").strip()
        if not query:
            raise UsageError("%%sql: the cell must hold a SQL statement")
        spark = self._spark()
        if args.quiet:
            progress.hush(self.shell)
        with spark_errors():
            df = spark.sql(query)
        if args.quiet and not args.output:
            return None
        frame = self._pull(df, args)
        if args.output:
            self._keep_local(args.output, frame, quiet=args.quiet)
        if args.quiet or len(frame.columns) == 0:
            return None
        return viz.shown(frame)  # the table-and-charts widget unless %sparkbook autoviz off

    # -- %%spark / %%local -------------------------------------------------------------------
    @cell_magic
    def spark(self, line: str, cell: str = "") -> Any:
        """%%spark [-o VAR] [-m ...] [-n N] [-r F]: run the cell as Python against `spark`."""
        __tracebackhide__ = True
        args = parse_spark_args(line)
        if isinstance(self.user_ns.get("spark"), startup.SparkUnavailable) or "spark" not in self.user_ns:
            self._spark()  # a clear sentence now rather than an AttributeError in the cell
        value = self._run(cell)
        if args.output:
            obj = self.user_ns.get(args.output, _MISSING)
            if is_spark_dataframe(obj):
                frame = self.local_ns[args.output] = self._pull(obj, args)
                print(f"{args.output}: {startup.plural(len(frame), 'row')} copied to pandas for %%local")
            elif is_pandas_dataframe(obj):
                self.local_ns[args.output] = obj
                print(f"{args.output}: already pandas, {startup.plural(len(obj), 'row')} kept for %%local")
            elif obj is _MISSING:
                raise UsageError(f"%%spark -o {args.output}: the cell defined no variable named {args.output}")
            else:
                raise UsageError(
                    f"%%spark -o {args.output}: {args.output} is a {type(obj).__name__}, not a Spark DataFrame"
                )
        return value

    @cell_magic
    def local(self, line: str, cell: str = "") -> Any:
        """%%local: run the cell with the -o pandas copies visible under their names."""
        __tracebackhide__ = True
        ns = self.user_ns
        shadowed: dict[str, Any] = {}
        for name, frame in list(self.local_ns.items()):
            current = ns.get(name, _MISSING)
            if is_spark_dataframe(current):
                shadowed[name] = current
                ns[name] = frame
        try:
            return viz.shown(self._run(cell))  # a pandas result as sparkmagic's %%local shows it
        finally:
            for name, spark_obj in shadowed.items():
                now = ns.get(name, _MISSING)
                if now is _MISSING:
                    self.local_ns.pop(name, None)
                elif now is not spark_obj:
                    self.local_ns[name] = now
                ns[name] = spark_obj

    # -- %%send_to_spark ---------------------------------------------------------------------
    @cell_magic
    def send_to_spark(self, line: str, cell: str = "") -> None:
        """%%send_to_spark -i VAR [-t str|df] [-n NAME] [-m MAXROWS]: local value to Spark."""
        __tracebackhide__ = True
        args = parse_send_args(line)
        if (cell or "").strip():
            raise UsageError("%%send_to_spark: takes no cell body; name the variable with -i")
        value = self._local_value(args.input)
        if args.vartype == "str":
            if not isinstance(value, str):
                raise UsageError(f"%%send_to_spark: {args.input} is a {type(value).__name__}, not a str (use -t df for pandas)")
            self.user_ns[args.name] = value
            return None
        if not is_pandas_dataframe(value):
            raise UsageError(f"%%send_to_spark: {args.input} is a {type(value).__name__}, not a pandas DataFrame")
        frame = value if args.maxrows < 0 else value.head(args.maxrows)
        spark = self._spark()
        with spark_errors():
            sdf = spark.createDataFrame(frame)
        if args.name == args.input:
            self.local_ns[args.name] = value  # %%local keeps seeing the pandas frame
        self.user_ns[args.name] = sdf
        return None

    # -- %%configure -------------------------------------------------------------------------
    @cell_magic
    def configure(self, line: str, cell: str = "") -> None:
        """%%configure [-f] {json}: Livy session settings; runtime Spark SQL conf applies now."""
        __tracebackhide__ = True
        force, body = parse_configure(line, cell)
        spark = self._spark()

        def is_runtime(key: str) -> bool:
            if key.startswith("spark.sql."):
                return True
            try:
                return bool(spark.conf.isModifiable(key))
            except Exception:
                return False

        plan = plan_configure(body, is_runtime)
        applied: dict[str, str] = {}
        for key, value in plan.runtime.items():
            try:
                with spark_errors():
                    spark.conf.set(key, value)
                applied[key] = value
            except startup.SparkUnavailableError:
                raise
            except SparkbookError:  # e.g. CANNOT_MODIFY_CONFIG: a static setting after all
                plan.needs_driver.append((key, value, CONF_FIELDS.get(key, "spec.sparkConf")))
        print(configure_message(plan, applied=applied, session=startup.session_name(), force=force,
                                local=startup.is_local()))

    # -- %%info and friends ------------------------------------------------------------------
    def _executors(self, app_id: str, master: str | None) -> str | None:
        """Running executors from the Spark UI's REST API: Spark Connect does not expose them."""
        base = os.environ.get(startup.UI_ENV)
        if not base or not app_id:
            return None
        url = f"{base.rstrip('/')}/api/v1/applications/{app_id}/executors"
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                data = json.load(resp)
        except Exception:
            return None
        if (master or "").startswith("local"):
            return "none (local mode: tasks run in the driver)"
        executors = [e for e in data if e.get("id") != "driver" and e.get("isActive", True)]
        cores = sum(int(e.get("totalCores", 0)) for e in executors)
        return f"{len(executors)} running, {startup.plural(cores, 'core')}"

    @staticmethod
    def _ui_answers() -> bool:
        """Whether the session's live Spark UI answers (true when there is none to ask)."""
        base = os.environ.get(startup.UI_ENV)
        if not base:
            return True
        try:
            with urllib.request.urlopen(f"{base.rstrip('/')}/api/v1/version", timeout=2):
                return True
        except Exception:  # noqa: BLE001 - refused, unresolvable, timed out: no driver
            return False

    @line_cell_magic
    def info(self, line: str = "", cell: str | None = None) -> None:
        """%%info: application id, Spark version, executors, Spark UI link."""
        __tracebackhide__ = True
        gone = startup.history_page(startup.last_app_id()) is not None and not self._ui_answers()
        try:
            if gone:  # not minutes of pyspark's retries against a driver that is not coming back
                raise startup.SparkUnavailableError("the driver is gone")
            spark = self._spark()
            with spark_errors():
                settings = dict(spark.conf.getAll)  # one round trip for everything set
        except Exception:
            # The driver is gone (idle suspension, suspend, a replaced driver): what it ran is on
            # the History Server, if there is one.
            page = startup.history_page(startup.last_app_id())
            if page is None:
                raise
            self._show_rows([
                ("Application", f"{startup.last_app_id()} (its driver has stopped)"),
                ("SparkSession", f"{startup.session_name()} (kubectl get sparksession {startup.session_name()})"),
                ("Spark UI", page),
                ("History Server", page),
            ], links=("Spark UI", "History Server"))
            return
        with spark_errors():
            app_id = settings.get("spark.app.id") or spark.conf.get("spark.app.id")
            version = spark.version
            conf = settings.get
            app_name = conf("spark.app.name")
            dyn = (conf("spark.dynamicAllocation.enabled") or "false").lower() == "true"
            if dyn:
                bounds = (
                    f"dynamic allocation {conf('spark.dynamicAllocation.minExecutors') or '0'}"
                    f"..{conf('spark.dynamicAllocation.maxExecutors') or 'unbounded'}"
                )
            else:
                inst = conf("spark.executor.instances")
                bounds = f"{inst} fixed" if inst else "fixed"
            sizes = f"executor {startup.plural(conf('spark.executor.cores') or '1', 'core')} / {conf('spark.executor.memory') or '1g'}"
            master = conf("spark.master")
        startup.remember_app(app_id)
        running = self._executors(app_id, master)
        session = startup.session_name()
        link = startup.ui_link()
        rows = [
            ("Application", f"{app_id}" + (f" ({app_name})" if app_name else "")),
            ("Spark version", version),
            ("Connect session", getattr(spark, "session_id", "?")),
        ]
        if session and startup.is_local():
            rows.append(("SparkSession", f"{session} (sparkbook local: Spark runs on this machine)"))
        elif session:
            rows.append(("SparkSession", f"{session} (kubectl get sparksession {session})"))
        if master:
            rows.append(("Master", master))
        rows.append(("Executors", f"{running + '; ' if running else ''}{bounds}; {sizes}"))
        rows.append(("Spark UI", link or "unknown (SPARKBOOK_SPARK_UI is not set)"))
        history = startup.history_page(app_id)
        if history:
            rows.append(("History Server", history))
        self._show_rows(rows, links=(("Spark UI",) if link else ()) + (("History Server",) if history else ()))

    @staticmethod
    def _show_rows(rows: list[tuple[str, Any]], *, links: tuple[str, ...] = ()) -> None:
        text = "\n".join(f"{k}: {v}" for k, v in rows)
        cells = []
        for k, v in rows:
            value = html.escape(str(v))
            if k in links:
                value = f'<a href="{html.escape(str(v), quote=True)}" target="_blank">{html.escape(str(v))}</a>'
            cells.append(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>{value}</td></tr>")
        from IPython.display import display

        display({"text/plain": mask(text), "text/html": mask(f"<table>{''.join(cells)}</table>")}, raw=True)

    @line_cell_magic
    def help(self, line: str = "", cell: str | None = None) -> None:
        """%%help: the magics, one line each."""
        print(help_text())

    @line_magic
    def sparkbook(self, line: str = "") -> None:
        """%sparkbook traceback [full|short] | progress [on|off] | autoviz [on|off]: how Spark errors,
        Spark progress and results are shown in every cell."""
        words = line.split()
        if words[:1] == ["progress"] and words[1:] in ([], ["on"], ["off"]):
            if len(words) == 2:
                progress.set_enabled(words[1] == "on")
            if progress.enabled():
                print("Spark progress and job links show under each cell (%sparkbook progress off: none).")
            else:
                print("Spark progress is off (%sparkbook progress on: show it under each cell).")
            return
        if words[:1] == ["autoviz"] and words[1:] in ([], ["on"], ["off"]):
            if len(words) == 2:
                viz.set_enabled(words[1] == "on")
            print(viz.status())
            return
        if not words or words[0] != "traceback" or len(words) > 2 or words[1:] not in ([], ["full"], ["short"]):
            raise UsageError(
                "usage: %sparkbook traceback [full|short] | %sparkbook progress [on|off] | %sparkbook autoviz [on|off]"
            )
        if len(words) == 2:
            errors.set_full_tracebacks(words[1] == "full")
        if errors.full_tracebacks():
            print("Spark errors show their full traceback (%sparkbook traceback short: the short form).")
        else:
            print("Spark errors show their class, message and your frames (%sparkbook traceback full: everything).")

    @line_cell_magic
    def logs(self, line: str = "", cell: str | None = None) -> None:
        """%%logs: where the Spark logs are (Spark Connect does not serve them)."""
        session = startup.session_name()
        if startup.is_local():
            where = os.environ.get(names.LOCAL_SPARK_LOG_ENV)
            print(
                "Spark runs on this machine (sparkbook local), in one process with no executors: its log is "
                + (f"{where}" if where else "in the folder `sparkbook local` printed when it started")
                + " (`tail -f` follows it); task errors are also in the Spark UI (%%info)."
            )
        elif session:
            n = names.SessionNames(session)
            print(
                f"Spark Connect does not serve logs to the notebook. The driver log: `kubectl logs {n.driver_pod}` "
                f"(-f to follow, --previous after a restart); executor logs: "
                f"`kubectl logs -l {names.SESSION_LABEL}={session},{names.ROLE_LABEL}=executor`; "
                "task errors and stderr links are also in the Spark UI (%%info)."
            )
        else:
            print(
                "Spark Connect does not serve logs to the notebook. The driver log: `kubectl logs <session>-driver` "
                "for the SparkSession this notebook uses (`kubectl get sparksessions`)."
            )

    @cell_magic
    def pretty(self, line: str, cell: str = "") -> Any:
        """%%pretty: run the cell; df.show() tables in its output become HTML tables."""
        __tracebackhide__ = True
        from IPython.display import HTML, display
        from IPython.utils.capture import capture_output

        cap = capture_output(stdout=True, stderr=False, display=False)
        captured = cap.__enter__()
        try:
            value = self._run(cell)
        finally:
            cap.__exit__(None, None, None)
            for chunk in split_show_output(captured.stdout):
                if isinstance(chunk, str):
                    print(chunk)
                else:
                    display(HTML(table_html(*chunk)))
        return value

    @line_cell_magic
    def cleanup(self, line: str = "", cell: str | None = None) -> None:
        """%%cleanup: nothing to clean; sessions are SparkSession resources."""
        parse_force("%%cleanup", line)
        print(_sessions_are_resources())

    @line_cell_magic
    def delete(self, line: str = "", cell: str | None = None) -> None:
        """%%delete: nothing to delete; sessions are SparkSession resources."""
        parse_force("%%delete", line, session=True)
        print(_sessions_are_resources())


def _sessions_are_resources() -> str:
    if startup.is_local():
        return ("Nothing done: Spark here is the local Spark Connect server `sparkbook local` started, not a Livy "
                "session; Ctrl-C in its terminal stops it (and JupyterLab with it).")
    session = startup.session_name() or "<name>"
    return (
        "Nothing done: Spark sessions here are SparkSession resources managed by the Sparkbook operator, "
        f"not Livy sessions. Stop this one with `kubectl patch sparksession {session} --type merge "
        "-p '{\"spec\":{\"suspend\":true}}'` (suspending the NotebookServer does it too), or delete it with "
        f"`kubectl delete sparksession {session}`."
    )


# Magics that take no cell body: IPython refuses a cell magic whose body is empty, but a
# sparkmagic notebook has cells that are just "%%info". Such a cell gets a blank body.
_BODILESS = re.compile(r"^%%(info|help|logs|cleanup|delete|send_to_spark|pretty|local|spark)\b")


def allow_bodiless_cell(lines: list[str]) -> list[str]:
    """IPython cleanup transformer: ``%%info`` alone becomes ``%%info`` + a blank body."""
    if lines and _BODILESS.match(lines[0]) and not "".join(lines[1:]).strip():
        first = lines[0] if lines[0].endswith("\n") else lines[0] + "\n"
        return [first, " \n"]
    return lines


def load_ipython_extension(ip: Any) -> None:
    """Register the magics and the short-error display (idempotent)."""
    if getattr(ip, "_sparkbook_magics", None) is None:
        magics = SparkbookMagics(ip)
        ip.register_magics(magics)
        ip._sparkbook_magics = magics
    cleanup = getattr(ip, "input_transformers_cleanup", None)
    if cleanup is not None and allow_bodiless_cell not in cleanup:
        cleanup.append(allow_bodiless_cell)
    errors.install(ip)
    # Another extension owns the custom handler: our errors then show as ordinary (short) tracebacks.
