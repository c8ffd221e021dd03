"""Argument parsing for the magics (pure): sparkmagic's flags as argparse, errors as UsageError."""

from __future__ import annotations

import argparse
import json
import keyword
import shlex
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

DEFAULT_MAXROWS = 2500
DEFAULT_SAMPLEFRACTION = 0.1
SAMPLE_METHODS = ("take", "sample")


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting the kernel."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog=prog, add_help=False, exit_on_error=False, allow_abbrev=False)

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")

    def parse_line(self, line: str) -> argparse.Namespace:
        try:
            argv = shlex.split(line or "")
        except ValueError as exc:
            raise UsageError(f"{self.prog}: {exc}") from None
        try:
            return self.parse_args(argv)
        except argparse.ArgumentError as exc:
            raise UsageError(f"{self.prog}: {exc}") from None


def _flag(value: str) -> bool:
    """sparkmagic's optional-value flags: `-q` alone, or `-q true|false`."""
    low = value.strip().lower()
    if low in ("1", "true", "yes", "y", "on"):
        return True
    if low in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _identifier(value: str) -> str:
    if not value.isidentifier() or keyword.iskeyword(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a Python variable name")
    return value


@dataclass(frozen=True)
class PullArgs:
    """How a Spark DataFrame is pulled down as pandas (-o/-m/-n/-r), plus %%sql's -q."""

    output: str | None = None
    samplemethod: str = "take"
    maxrows: int = DEFAULT_MAXROWS
    samplefraction: float = DEFAULT_SAMPLEFRACTION
    quiet: bool = False
    coerce: bool | None = None  # accepted for compatibility; pandas types already come from Arrow


def _pull_parser(prog: str, *, quiet: bool) -> _Parser:
    p = _Parser(prog)
    p.add_argument("-o", "--output", type=_identifier, default=None)
    p.add_argument("-m", "--samplemethod", default=None)
    p.add_argument("-n", "--maxrows", type=int, default=None)
    p.add_argument("-r", "--samplefraction", type=float, default=None)
    p.add_argument("-c", "--coerce", type=_flag, nargs="?", const=True, default=None)
    if quiet:
        p.add_argument("-q", "--quiet", type=_flag, nargs="?", const=True, default=False)
    return p


def _pull_args(prog: str, line: str, *, quiet: bool) -> PullArgs:
    ns = _pull_parser(prog, quiet=quiet).parse_line(line)
    method = (ns.samplemethod or "take").lower()
    if method not in SAMPLE_METHODS:
        raise UsageError(f"{prog}: -m must be take or sample, not {ns.samplemethod!r}")
    fraction = DEFAULT_SAMPLEFRACTION if ns.samplefraction is None else ns.samplefraction
    if not 0.0 < fraction <= 1.0:
        raise UsageError(f"{prog}: -r must be a fraction in (0, 1], not {fraction:g}")
    return PullArgs(
        output=ns.output,
        samplemethod=method,
        maxrows=DEFAULT_MAXROWS if ns.maxrows is None else ns.maxrows,
        samplefraction=fraction,
        quiet=bool(getattr(ns, "quiet", False)),
        coerce=ns.coerce,
    )


def parse_sql_args(line: str) -> PullArgs:
    """``%%sql [-o VAR] [-q] [-m take|sample] [-n|--maxrows N] [-r|--samplefraction F] [-c BOOL]``."""
    return _pull_args("%%sql", line, quiet=True)


def parse_spark_args(line: str) -> PullArgs:
    """``%%spark [-o VAR] [-m take|sample] [-n N] [-r F] [-c BOOL]``."""
    return _pull_args("%%spark", line, quiet=False)


@dataclass(frozen=True)
class SendArgs:
    input: str
    vartype: str = "str"
    varname: str | None = None
    maxrows: int = DEFAULT_MAXROWS

    @property
    def name(self) -> str:
        return self.varname or self.input


def parse_send_args(line: str) -> SendArgs:
    """``%%send_to_spark -i VAR [-t str|df] [-n NAME] [-m MAXROWS]`` (sparkmagic's -m is maxrows here)."""
    p = _Parser("%%send_to_spark")
    p.add_argument("-i", "--input", type=_identifier, default=None)
    p.add_argument("-t", "--vartype", default="str")
    p.add_argument("-n", "--varname", type=_identifier, default=None)
    p.add_argument("-m", "--maxrows", type=int, default=DEFAULT_MAXROWS)
    ns = p.parse_line(line)
    if not ns.input:
        raise UsageError("%%send_to_spark: -i VAR is required (the local variable to send)")
    vartype = ns.vartype.lower()
    if vartype not in ("str", "df"):
        raise UsageError(f"%%send_to_spark: -t must be str or df, not {ns.vartype!r}")
    return SendArgs(input=ns.input, vartype=vartype, varname=ns.varname, maxrows=ns.maxrows)


def parse_force(prog: str, line: str, *, session: bool = False) -> bool:
    """``-f`` (and, for %%delete, ``-s ID``) of %%configure, %%cleanup and %%delete."""
    p = _Parser(prog)
    p.add_argument("-f", "--force", type=_flag, nargs="?", const=True, default=False)
    if session:
        p.add_argument("-s", "--session", default=None)
    return bool(p.parse_line(line).force)


def parse_configure(line: str, cell: str) -> tuple[bool, dict[str, Any]]:
    """``%%configure [-f]`` and its JSON body: (force, settings)."""
    force = parse_force("%%configure", line)
    text = (cell or "").strip()
    if not text:
        raise UsageError('%%configure: the cell must hold a JSON object, e.g. {"conf": {"spark.sql.shuffle.partitions": "64"}}')
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"%%configure: the cell is not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise UsageError("%%configure: the cell must hold a JSON object")
    conf = body.get("conf", {})
    if conf is None:
        conf = {}
    if not isinstance(conf, dict):
        raise UsageError('%%configure: "conf" must be an object of Spark settings')
    return force, body
