"""The `sparkbook` command: crds, render, local, run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _repo_crds_dir() -> Path:
    return Path.cwd() / "crds"


def cmd_crds(args: argparse.Namespace) -> int:
    from sparkbook import crds

    directory = Path(args.dir)
    if args.check:
        problems = crds.check(directory)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print(f"{directory} differs from the models: run `sparkbook crds` and commit.", file=sys.stderr)
            return 1
        print(f"{directory} matches the models.")
        return 0
    for path in crds.write(directory):
        print(f"wrote {path}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from sparkbook.render import RenderError, render_stream
    from sparkbook.settings import Settings

    text = "\n---\n".join(sys.stdin.read() if f == "-" else Path(f).read_text() for f in args.file)
    try:
        sys.stdout.write(render_stream(text, settings=Settings.from_env(), namespace=args.namespace))
    except RenderError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sparkbook.handlers import run

    return run(
        namespaces=args.namespace or None,
        standalone=args.standalone,
        liveness=args.liveness,
        verbose=args.verbose,
        log_format=args.log_format,
        leader_elect=args.leader_elect,
    )


def cmd_local(args: argparse.Namespace) -> int:
    from sparkbook.local import run

    return run(
        args.file,
        jupyter_port=args.port,
        connect_port=args.connect_port,
        ui_port=args.ui_port,
        notebook_dir=args.notebook_dir,
    )


def cmd_kernels(args: argparse.Namespace) -> int:
    from sparkbook import kernels

    which = tuple(args.only.split(",")) if args.only else kernels.KERNELS
    try:
        for path in kernels.install(which, prefix=args.prefix):
            print(f"installed {path}")
    except (RuntimeError, ValueError) as e:
        print(f"sparkbook kernels: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparkbook", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("crds", help="write crds/ from the API models (or --check for drift)")
    p.add_argument("--dir", default=str(_repo_crds_dir()))
    p.add_argument("--check", action="store_true", help="exit 1 when the files differ from the models")
    p.set_defaults(func=cmd_crds)

    p = sub.add_parser("render", help="print the children the operator would apply, without a cluster")
    p.add_argument("-f", "--file", required=True, action="append",
                   help="YAML with SparkSessions, NotebookServers and the NotebookProfiles they name ('-' for "
                        "stdin); repeatable")
    p.add_argument("-n", "--namespace", default="default", help="namespace for resources that name none")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("local", help="run a NotebookServer YAML on this machine: local Spark Connect + Jupyter")
    p.add_argument("-f", "--file", required=True, help="YAML with a NotebookServer (and the SparkSession it refers to)")
    p.add_argument("--port", type=int, default=8888, help="Jupyter port (default 8888)")
    p.add_argument("--connect-port", type=int, default=15002, help="Spark Connect port (default 15002)")
    p.add_argument("--ui-port", type=int, default=4040, help="Spark UI port (default 4040)")
    p.add_argument("--notebook-dir", default=None, help="where notebooks live (default: the current directory, or ~/sparkbook-notebooks when that "
                   "is inside a git work tree)")
    p.set_defaults(func=cmd_local)

    p = sub.add_parser("kernels", help="install the Scala and R kernels (beside the Python one) for Jupyter")
    p.add_argument("action", choices=["install"])
    p.add_argument("--prefix", default=sys.prefix, help="where share/jupyter/kernels is (default: this Python's prefix)")
    p.add_argument("--only", default=None, help="a comma-separated subset of: scala,r")
    p.set_defaults(func=cmd_kernels)

    p = sub.add_parser("run", help="run the operator")
    p.add_argument("-n", "--namespace", action="append", help="watch only this namespace (repeatable)")
    p.add_argument("--standalone", action="store_true", help="no peering with other operator replicas")
    p.add_argument("--liveness", default=None, help="health endpoint, e.g. http://0.0.0.0:8080/healthz")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--leader-elect", action="store_true",
                   help="several replicas: only the holder of the Lease sparkbook-operator reconciles")
    p.add_argument("--log-format", choices=["text", "json"], default=None,
                   help="log lines as text or JSON (default: SPARKBOOK_LOG_FORMAT, else text)")
    p.set_defaults(func=cmd_run)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
