"""The Scala kernel: Scala 2.13's interpreter with the Spark Connect Scala client, as a Jupyter kernel.

Why not Almond: Almond, the usual Jupyter Scala kernel, is not served by the Maven mirror these
machines reach (every ``sh.almond`` path answers 404), and it would bring a second Scala and Spark
client to keep in step. pyspark's own wheel already carries the pinned Spark's Scala client
(``pyspark/jars/connect-repl/spark-connect-client-jvm_2.13-<v>.jar``, what ``spark-shell --remote``
runs) and the Scala 2.13 compiler, so the kernel is built from those:

* the JVM half, ``Repl.scala`` beside this file, compiled once by ``sparkbook kernels install`` into
  a jar in the kernel spec: an ``IMain`` (the REPL's interpreter) reading framed cells on stdin and
  framing their output on stdout, so nothing here parses prompts;
* this module, the Jupyter half: an ``ipykernel`` wrapper kernel that starts that JVM, sends it the
  start-up (``lazy val spark = sparkbook.Spark.session()``: the same ``SPARK_REMOTE``, token and
  bounded first contact as the Python kernel) and relays cells, output, errors and interrupts.

The JVM runs in a session of its own, so the SIGINT Jupyter sends the kernel's process group for an
interrupt reaches only this process; it forwards it as an interrupt frame, which cancels the
session's Spark operations (``interruptAll``) and the running cell.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("scala") / "Repl.scala"
JAR_NAME = "sparkbook-repl.jar"
JAR_ENV = "SPARKBOOK_SCALA_REPL_JAR"
JAVA_OPTS_ENV = "SPARKBOOK_SCALA_JAVA_OPTS"
# The packages Spark opens for itself on Java 17 (spark-submit's JavaModuleOptions): Arrow needs
# java.nio to collect results, date conversion sun.util.calendar, and so on. The REPL's compiler
# recurses deeply on big expressions: a larger thread stack, as spark-shell gives it.
OPENS = ["java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio", "java.util",
         "java.util.concurrent", "java.util.concurrent.atomic", "jdk.internal.ref", "sun.nio.ch", "sun.nio.cs",
         "sun.security.action", "sun.util.calendar"]
# The JVM's own messages (warnings, unified logging) go to stderr: stdout carries the frames.
JAVA_OPTS = ["-Xss4m", "-Dio.netty.tryReflectionSetAccessible=true", "-XX:+DisplayVMOutputToStderr",
             "-Xlog:all=warning:stderr", *(f"--add-opens=java.base/{package}=ALL-UNNAMED" for package in OPENS)]
# A class-data archive of what starting the interpreter and the Connect client loads, dumped once by
# `sparkbook kernels install` beside the jar (Java's AppCDS): measured here, the first cell of a new
# kernel went from 9.0-11.5 s to 6.1-7.1 s before connecting, for 80 MB on disk. A JVM that cannot
# use it (another Java) starts without it.
ARCHIVE_NAME = "sparkbook-repl.jsa"
TRAINING = ["1 + 1",
            'val client = org.apache.spark.sql.connect.client.SparkConnectClient.builder()'
            '.connectionString("sc://127.0.0.1:1").build()\n'
            'import org.apache.spark.sql.functions._\ncol("a") + 1']
# The Spark client's logs go to the kernel's log (Jupyter's terminal, the pod's log), warnings and errors only.
LOG4J = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
# Each retry while Spark is away would log a stack trace; the notebook already says it in one
# sentence (sparkbook.Spark.session).
logger.retry.name = org.apache.spark.sql.connect.client.GrpcRetryHandler
logger.retry.level = error
"""
# The classic Spark jars that the Connect client must not see beside it (spark-shell --remote's
# class path leaves out the same ones).
CLASSIC = ("spark-sql_", "spark-connect_", "spark-sql-api_", "spark-connect-common_")



def pyspark_jars() -> Path:
    """The jars of the installed pyspark (the pinned Spark's)."""
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def classpath(jars: Path | None = None, repl_jar: Path | None = None) -> str:
    """The Connect client's class path (pyspark's connect-repl jars and the shared ones), with the
    kernel's own jar first."""
    jars = jars or pyspark_jars()
    if not (jars / "connect-repl").is_dir():
        raise RuntimeError(f"{jars}/connect-repl is missing: this pyspark has no Spark Connect Scala client")
    parts = [str(repl_jar)] if repl_jar else []
    parts.append(str(jars / "connect-repl" / "*"))
    parts += [p for p in sorted(glob.glob(str(jars / "*.jar"))) if not Path(p).name.startswith(CLASSIC)]
    return os.pathsep.join(parts)


def java() -> str:
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if not found:
        raise RuntimeError("the Scala kernel needs Java 17 or newer (java is not on PATH and JAVA_HOME is not set)")
    return found


def ready() -> str | None:
    """None when this machine can run the Scala kernel, else what is missing."""
    try:
        java()
        jars = pyspark_jars()
    except (RuntimeError, ImportError) as e:
        return str(e)
    if not (jars / "connect-repl").is_dir():
        return "this pyspark has no Spark Connect Scala client (pyspark/jars/connect-repl)"
    return None


def build_jar(dest: Path) -> Path:
    """Compile Repl.scala into ``dest`` with pyspark's Scala compiler, unless it is already built
    from this very source (its hash is kept beside the jar)."""
    digest = hashlib.sha256(SOURCE.read_bytes() + classpath().encode()).hexdigest()
    stamp = dest.with_suffix(".sha256")
    if dest.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / JAR_NAME
        subprocess.run(
            [java(), "-cp", classpath(), "scala.tools.nsc.Main", "-usejavacp", "-nowarn", "-d", str(out), str(SOURCE)],
            check=True,
        )
        shutil.move(str(out), dest)
    stamp.write_text(digest + "\n")
    return dest


def java_version() -> str:
    done = subprocess.run([java(), "-version"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip()


def build_archive(jar: Path) -> Path | None:
    """Dump the class-data archive beside ``jar`` by starting the interpreter once, unless it is
    there for this jar and this Java; None when this Java cannot dump one (the kernel works without)."""
    archive = jar.with_name(ARCHIVE_NAME)
    stamp = archive.with_name(ARCHIVE_NAME + ".sha256")  # not .with_suffix: the jar's stamp is that
    digest = hashlib.sha256(jar.read_bytes() + java_version().encode() + "\n".join(TRAINING).encode()).hexdigest()
    if archive.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return archive
    archive.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        dumped = Path(tmp) / ARCHIVE_NAME
        # Dumping warns of every class it leaves out (JFR events, generated accessors): not news.
        repl = Repl(jar, archive=None, extra_opts=[f"-XX:ArchiveClassesAtExit={dumped}", "-Xlog:all=error:stderr"])
        try:
            for cell in TRAINING:
                repl.send(cell, quiet=True)
                if repl.receive(lambda _text: None) != "ok":
                    return None
        finally:
            repl.close()
        if not dumped.is_file():
            return None
        shutil.move(str(dumped), archive)
    stamp.write_text(digest + "\n")
    return archive


def kernel_spec(jar: Path) -> dict[str, Any]:
    import sys

    return {
        "argv": [sys.executable, "-m", "sparkbook.kernels.scala", "-f", "{connection_file}"],
        "display_name": "Scala (Spark)",
        "language": "scala",
        "interrupt_mode": "signal",
        "env": {JAR_ENV: str(jar)},
        "metadata": {"sparkbook": {"spark_client": "spark-connect-client-jvm_2.13"}},
    }


def _error_name(text: str) -> tuple[str, str]:
    """(ename, evalue) of a failed cell's output: the exception's class, or a compile error."""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("error:"):
            return "CompileError", s[len("error:"):].strip()
        m = re.match(r"^([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?:Exception|Error|Throwable)?)(?::\s*(.*))?$", s)
        if m and ("Exception" in m.group(1) or "Error" in m.group(1)):
            return m.group(1).rsplit(".", 1)[-1], (m.group(2) or "").strip()
    first = next((s.strip() for s in text.splitlines() if s.strip()), "the cell failed")
    return "Error", first


class Repl:
    """The JVM half: a process that runs framed cells (see Repl.scala)."""

    def __init__(self, jar: Path, *, env: dict[str, str] | None = None, archive: Path | None | bool = True,
                 extra_opts: list[str] | None = None) -> None:
        self.classes = tempfile.mkdtemp(prefix="sparkbook-scala-")
        log4j = jar.with_name("log4j2.properties")
        opts = JAVA_OPTS + ([f"-Dlog4j2.configurationFile={log4j}"] if log4j.exists() else [])
        if archive is True:  # the one beside the jar, when install dumped one
            archive = jar.with_name(ARCHIVE_NAME) if jar.with_name(ARCHIVE_NAME).is_file() else None
        if archive:
            opts += [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto"]
        opts += (extra_opts or []) + os.environ.get(JAVA_OPTS_ENV, "").split()
        self.proc = subprocess.Popen(
            [java(), *opts, "-cp", classpath(repl_jar=jar), "sparkbook.Repl", self.classes],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,  # Jupyter's SIGINT for the kernel's group must not kill the JVM
        )
        self.lock = threading.Lock()

    def send(self, code: str, *, quiet: bool = False) -> None:
        data = code.encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"%s %d\n" % (b"Q" if quiet else b"X", len(data)) + data)
        self.proc.stdin.flush()

    def interrupt(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"I\n")
        self.proc.stdin.flush()

    def receive(self, on_output) -> str:
        """Relay the running cell's output to ``on_output`` until it is done: ok, error, incomplete
        or gone (the JVM exited)."""
        assert self.proc.stdout is not None
        while True:
            header = self.proc.stdout.readline().decode()
            if header.startswith("O "):
                on_output(self.proc.stdout.read(int(header[2:])).decode(errors="replace"))
            elif header.startswith("R "):
                return header[2:].strip()
            elif not header:
                return "gone"

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
        shutil.rmtree(self.classes, ignore_errors=True)


def _kernel_class():
    from ipykernel.kernelbase import Kernel

    from sparkbook import __version__

    class ScalaKernel(Kernel):
        implementation = "sparkbook-scala"
        implementation_version = __version__
        language = "scala"
        language_version = "2.13"
        language_info = {
            "name": "scala",
            "version": "2.13",
            "mimetype": "text/x-scala",
            "file_extension": ".scala",
            "codemirror_mode": "text/x-scala",
            "pygments_lexer": "scala",
        }
        banner = "Scala 2.13 with the Spark Connect Scala client: `spark` is the notebook's SparkSession"

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            jar = Path(os.environ.get(JAR_ENV) or "")
            if not jar.is_file():
                raise RuntimeError(f"{JAR_ENV} does not name the kernel's jar: run `sparkbook kernels install`")
            self.repl = Repl(jar)
            # The start-up runs while Jupyter is still saying hello; its output (the banner, or
            # why Spark is unreachable) opens the first cell's output, as in the Python kernel.
            from sparkbook.kernels import startup

            self.repl.send(startup.read(startup.SCALA_FILE, startup.SCALA), quiet=True)
            self.starting = True

        def _relay(self, text: str) -> None:
            if not self.silent:
                self.send_response(self.iopub_socket, "stream", {"name": "stdout", "text": text})

        def do_execute(self, code, silent, store_history=True, user_expressions=None, allow_stdin=False):
            self.silent = silent
            output: list[str] = []

            def collect(text: str) -> None:
                output.append(text)
                self._relay(text)

            try:
                if self.starting:
                    self.starting = False
                    if self.repl.receive(self._relay) == "gone":
                        return self._gone()
                if not code.strip():
                    return self._ok()
                self.repl.send(code)
                try:
                    result = self.repl.receive(collect)
                except KeyboardInterrupt:
                    self.repl.interrupt()
                    self.repl.receive(collect)
                    return self._error("KeyboardInterrupt", "the cell was interrupted")
            except KeyboardInterrupt:  # while the start-up ran
                return self._error("KeyboardInterrupt", "interrupted while the Scala kernel started")
            if result == "ok":
                return self._ok()
            if result == "incomplete":
                return self._error("IncompleteInput", "the cell ends in the middle of an expression")
            if result == "gone":
                return self._gone()
            if result == "unavailable":  # the output is the one sentence saying why
                return self._error("SparkUnavailable", "".join(output).strip())
            return self._error(*_error_name("".join(output)))

        def _ok(self) -> dict[str, Any]:
            return {"status": "ok", "execution_count": self.execution_count, "payload": [], "user_expressions": {}}

        def _error(self, ename: str, evalue: str) -> dict[str, Any]:
            content = {"ename": ename, "evalue": evalue, "traceback": []}
            if not self.silent:
                self.send_response(self.iopub_socket, "error", content)
            return {"status": "error", "execution_count": self.execution_count, **content}

        def _gone(self) -> dict[str, Any]:
            code = self.repl.proc.poll()
            return self._error("KernelDied", f"the Scala interpreter's JVM exited (code {code}); restart the kernel")

        def do_shutdown(self, restart):
            self.repl.close()
            return {"status": "ok", "restart": restart}

    return ScalaKernel


def main() -> None:
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(kernel_class=_kernel_class())


if __name__ == "__main__":
    main()
