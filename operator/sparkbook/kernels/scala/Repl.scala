// The JVM half of Sparkbook's Scala kernel (sparkbook.kernels.scala is the Jupyter half).
//
// Scala 2.13's own interpreter (scala.tools.nsc.interpreter.IMain, shipped with pyspark beside the
// Spark Connect Scala client) evaluates each cell; this object only frames its input and output on
// stdin/stdout so the Jupyter half never parses a prompt:
//
//   in:  "X <n>\n" then n bytes of UTF-8 code    run a cell
//        "Q <n>\n" then n bytes                  run it quietly (no `val x: T = ...` echo): the start-up
//        "I\n"                                   interrupt the running cell
//   out: "O <n>\n" then n bytes                  output of the running cell
//        "R <ok|error|incomplete|unavailable>\n" the cell is done (unavailable: Spark did not answer)
//
// Cells run on a worker thread, so an interrupt is read while one runs: it cancels the session's
// Spark operations (SparkSession.interruptAll) and interrupts the worker. stderr is left alone
// (the JVM's and Spark client's logs go to the kernel's log, not into cells).
package sparkbook

import java.io.{BufferedInputStream, DataInputStream, FileDescriptor, FileOutputStream, OutputStream, PrintStream, PrintWriter}
import java.nio.charset.StandardCharsets.UTF_8
import java.util.concurrent.{Executors, Future => JFuture}

import scala.tools.nsc.Settings
import scala.tools.nsc.interpreter.{IMain, Results}
import scala.tools.nsc.interpreter.shell.ReplReporterImpl

/** Frames every write as an "O" message; `done` ends a cell with an "R" message. */
final class Frames(out: OutputStream) {
  def output(bytes: Array[Byte], off: Int, len: Int): Unit = synchronized {
    if (len > 0) {
      out.write(s"O $len\n".getBytes(UTF_8)); out.write(bytes, off, len); out.flush()
    }
  }
  def done(result: String): Unit = synchronized { out.write(s"R $result\n".getBytes(UTF_8)); out.flush() }
}

final class CellStream(frames: Frames) extends OutputStream {
  override def write(b: Int): Unit = frames.output(Array(b.toByte), 0, 1)
  override def write(b: Array[Byte], off: Int, len: Int): Unit = frames.output(b, off, len)
}

/** The REPL's reporter, but a failure of Sparkbook's own (Spark unreachable) is one sentence, not a
  * stack trace: the sentence says what to do, the trace would only bury it. */
final class Reporter(settings: Settings, writer: PrintWriter) extends ReplReporterImpl(settings, writer) {
  @volatile var unavailable = false // this cell failed because Spark did not answer
  override def printMessage(msg: String): Unit = {
    val ours = msg.linesIterator.find(_.startsWith("sparkbook.SparkUnavailable: "))
    if (ours.isDefined) unavailable = true
    super.printMessage(ours.map(_.stripPrefix("sparkbook.SparkUnavailable: ")).getOrElse(msg))
  }
}

object Repl {
  def main(args: Array[String]): Unit = {
    val classDir = args.headOption.getOrElse(sys.error("usage: sparkbook.Repl <class output dir>"))
    Spark.classDir = classDir
    val frames = new Frames(new FileOutputStream(FileDescriptor.out))
    val cellOut = new PrintStream(new CellStream(frames), true, "UTF-8")
    System.setOut(cellOut) // before scala.Console first reads it: println in cells lands here too
    val settings = new Settings()
    settings.usejavacp.value = true
    settings.Yreploutdir.value = classDir // where REPLClassDirMonitor finds cell classes for UDFs
    val writer = new PrintWriter(cellOut, true)
    val reporter = new Reporter(settings, writer)
    val intp = new IMain(settings, reporter)
    val worker = Executors.newSingleThreadExecutor { r =>
      val t = new Thread(r, "sparkbook-cell"); t.setDaemon(true); t
    }
    @volatile var running: JFuture[_] = null
    val in = new DataInputStream(new BufferedInputStream(System.in))

    def line(): String = {
      val sb = new StringBuilder
      var c = in.read()
      while (c != -1 && c != '\n') { sb.append(c.toChar); c = in.read() }
      if (c == -1 && sb.isEmpty) null else sb.toString
    }

    def interrupt(): Unit = if (running != null && !running.isDone) {
      Spark.interrupt()
      running.cancel(true)
    }

    var header = line()
    while (header != null) {
      if (header == "I") interrupt()
      else if (header.startsWith("X ") || header.startsWith("Q ")) {
        val quiet = header.startsWith("Q ")
        val code = new Array[Byte](header.drop(2).trim.toInt)
        in.readFully(code)
        running = worker.submit(new Runnable {
          def run(): Unit = {
            reporter.unavailable = false
            // beQuietDuring returns Unit: the result is kept here, or every quiet cell looked failed.
            var result: Results.Result = Results.Error
            def interpret(): Unit = result = intp.interpret(new String(code, UTF_8))
            try Console.withOut(cellOut)(Console.withErr(cellOut)(if (quiet) intp.beQuietDuring(interpret()) else interpret()))
            catch { case e: Throwable => cellOut.println(e); result = Results.Error }
            frames.done(result match {
              case Results.Success => "ok"
              case Results.Incomplete => "incomplete"
              case _ if reporter.unavailable => "unavailable"
              case _ => "error"
            })
          }
        })
      }
      header = line()
    }
    sys.exit(0) // stdin closed: the kernel is gone
  }
}

/** Thrown when `spark` is used and the Spark Connect server does not answer; its message is the
  * one sentence the cell shows (see Reporter). */
final class SparkUnavailable(sentence: String) extends RuntimeException(sentence, null, false, false)

/** `spark` for Scala cells: the same session, token and bounded first contact as the Python kernel's
  * (sparkbook.notebook.startup). The kernel's start-up binds `lazy val spark = sparkbook.Spark.session()`:
  * a lazy val whose initializer throws is tried again at its next use, so a notebook whose driver was
  * still starting needs no restart. */
object Spark {
  import org.apache.spark.sql.connect.{SparkSession => ConnectSession}
  import org.apache.spark.sql.connect.client.{REPLClassDirMonitor, RetryPolicy, SparkConnectClient}
  import scala.concurrent.duration._

  @volatile private[sparkbook] var current: ConnectSession = null
  private[sparkbook] var classDir: String = null

  private def env(name: String): Option[String] = sys.env.get(name).map(_.trim).filter(_.nonEmpty)

  private def hint: String =
    if (env("SPARKBOOK_LOCAL").exists(v => Set("1", "true", "yes")(v.toLowerCase)))
      "the terminal that runs `sparkbook local` (is its Spark Connect server still up?)"
    else env("SPARKBOOK_SPARK_SESSION").map(s => s"`kubectl get sparksession $s` (is it Running?)")
      .getOrElse("`kubectl get sparksessions` (is it Running?)")

  /** `sc://host:port` of a Connect URL: never its parameters, so never its token. */
  def endpoint(url: String): String = url.split(";", 2)(0).stripSuffix("/")

  private def sentence(where: String, e: Throwable): String = {
    val all = Iterator.iterate(e)(_.getCause).takeWhile(_ != null).map(t => s"${t.getClass.getName}: ${t.getMessage}").mkString(" ")
    val low = all.toLowerCase
    if (low.contains("unauthenticated"))
      s"Spark at $where refused this notebook's token (UNAUTHENTICATED): the SparkSession may have been re-created with a new token; check $hint, then restart the notebook server."
    else {
      val reason =
        if (low.contains("refused")) "connection refused"
        else if (low.contains("unresolved") || low.contains("unknownhost") || low.contains("not known")) "host name not found"
        else if (low.contains("deadline") || low.contains("timed out")) "connection timed out"
        else if (low.contains("unavailable")) "gRPC UNAVAILABLE"
        else Option(e.getMessage).getOrElse(e.getClass.getSimpleName).linesIterator.nextOption().getOrElse("").take(200)
      s"Spark is not reachable at $where ($reason); check $hint, then use `spark` again or restart the kernel."
    }
  }

  /** The session, connecting (bounded by SPARKBOOK_CONNECT_TIMEOUT, 15 s) on first use. */
  def session(): ConnectSession = synchronized {
    if (current != null) return current
    val url = env("SPARK_REMOTE").getOrElse(throw new SparkUnavailable(
      "This kernel has no Spark session: SPARK_REMOTE is not set (a NotebookServer without spec.spark?)."))
    val where = endpoint(url)
    if (url.contains("$("))
      throw new SparkUnavailable(s"Spark is not ready yet: the SparkSession's token Secret does not exist; check $hint, then restart the kernel.")
    val timeout = env("SPARKBOOK_CONNECT_TIMEOUT").flatMap(_.toDoubleOption).getOrElse(15.0)
    // First contact under a short retry policy (a few seconds of backoff), in a thread so an address
    // that drops packets cannot hold the cell longer than the timeout; the client's default policy
    // (minutes of retries) is what the notebook keeps afterwards, to ride out a driver restart.
    val short = RetryPolicy.defaultPolicies().map(_.copy(maxRetries = Some(5), initialBackoff = 200.millis, maxBackoff = Some(2.seconds)))
    @volatile var failure: Throwable = null
    @volatile var info: (String, String) = null
    val probe = new Thread(() => {
      try {
        val client = SparkConnectClient.builder().connectionString(url).retryPolicy(short).build()
        // Builder.client is private[sql] in Scala, public in the bytecode: the one way to give a
        // session a retry policy of its own.
        val builder = ConnectSession.builder()
        builder.getClass.getMethods.find(m => m.getName == "client" && m.getParameterCount == 1).get.invoke(builder, client)
        val s = builder.create()
        try info = (s.version, s.conf.get("spark.app.id")) finally s.close()
      } catch { case e: Throwable => failure = e }
    }, "sparkbook-connect")
    probe.setDaemon(true); probe.start(); probe.join((timeout * 1000).toLong)
    if (info == null) {
      if (failure == null)
        throw new SparkUnavailable(s"Spark did not answer at $where within ${"%.0f".format(timeout)} s; check $hint, then use `spark` again or restart the kernel.")
      throw new SparkUnavailable(sentence(where, failure))
    }
    val s = ConnectSession.builder().remote(url).create()
    if (classDir != null) s.registerClassFinder(new REPLClassDirMonitor(classDir)) // UDFs defined in cells
    current = s
    val ui = env("SPARKBOOK_SPARK_UI_LINK").orElse(env("SPARKBOOK_SPARK_UI")).map { link =>
      val prefix = env("JUPYTERHUB_SERVICE_PREFIX").getOrElse("/").stripSuffix("/")
      if (link.startsWith("/proxy/")) prefix + link else link
    }
    println(s"Spark ${info._1} is ready as `spark` · application ${info._2}" + ui.map(l => s" · Spark UI: $l").getOrElse(""))
    s
  }

  /** Cancel what the session runs (the kernel's interrupt), without connecting for it. */
  def interrupt(): Unit = Option(current).foreach(s => try s.interruptAll() catch { case _: Throwable => () })
}
