"""No traceback from any command: the `raysid` group turns whatever escapes a command into one line and exit 2.

Usage errors (a bad option value, a missing argument) are one line naming the option, the value and what is
allowed; an exception a command did not handle is one line naming what failed and the next step (for a full
disk, an unwritable folder, a server that does not answer: what to do about it). Exit codes a command chose
itself (1 for failed trials, 130 for an interruption) are kept. ``raysid --debug …`` or ``RAYSID_DEBUG=1``
lets the exception through with its traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Any

import typer
from typer._click import Context, echo  # typer 0.29 carries its own click (requirements.lock pins it)
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

DEBUG_ENV = "RAYSID_DEBUG"
PROJECT = Path(__file__).resolve().parents[1]


def debugging(ctx: Context | None = None) -> bool:
    """Whether --debug or RAYSID_DEBUG=1 asks for tracebacks."""
    flag = bool(ctx and ctx.find_root().params.get("debug"))
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def say(line: str) -> None:
    """One unwrapped error line on standard output (where the commands print theirs)."""
    echo(f"error: {line}")


class RaysidGroup(TyperGroup):
    """The top-level group: usage errors and escaped exceptions become one line (see the module docstring)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)  # a command's result, or an Exit's code
        except ClickException as error:
            say(usage_line(error))
            sys.exit(error.exit_code)
        except typer.Abort:
            say("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: Context) -> Any:
        ctx.meta["raysid.command"] = command_name(self, [*getattr(ctx, "_protected_args", []), *ctx.args])
        try:
            return super().invoke(ctx)
        except (ClickException, typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            say("interrupted; nothing more was done")
            raise typer.Exit(130) from None
        except Exception as error:  # noqa: BLE001 - the one place every escaped exception is turned into a line
            if debugging(ctx):
                traceback.print_exc()
            else:
                say(failure_line(error, ctx))
            raise typer.Exit(2) from None


def command_name(group: Any, args: list[str]) -> str:
    """``raysid data show``: the command words at the start of ``args`` (whatever the program was called)."""
    words, command = ["raysid"], group
    for arg in args:
        found = getattr(command, "commands", {}).get(arg)
        if found is None:
            break
        words.append(arg)
        command = found
    return " ".join(words)


def usage_line(error: ClickException) -> str:
    """A click/typer usage error as one line: the option, the value given, what is allowed, where help is."""
    message = " ".join(error.format_message().split())
    value = _given_value(error)
    message = message.rstrip(".")
    if value is not None and "got" not in message:
        message = f"{message} (got {value!r})"
    ctx = getattr(error, "ctx", None)
    return f"{message}; see {ctx.command_path} --help" if ctx is not None else message


def _given_value(error: BaseException) -> Any:
    """The raw value typer's validation rejected (kept on the pydantic error it wraps), if any."""
    cause = error.__cause__
    errors = getattr(cause, "errors", None)
    if callable(errors):
        try:
            found = errors()
        except Exception:  # noqa: BLE001 - only a nicety of the message
            return None
        if found and "input" in found[0]:
            return found[0]["input"]
    return None


def failure_line(error: BaseException, ctx: Context | None = None) -> str:
    """One line for an exception no command handled: what failed, then the next step."""
    from raysid.environment import explain

    command = ctx.meta.get("raysid.command", "raysid") if ctx is not None else "raysid"
    known = explain(error)
    if known is not None:
        return known
    detail = " ".join(str(error).split()) or "(no message)"
    if len(detail) > 300:
        detail = detail[:300] + " …"
    return (f"{command} failed: {type(error).__name__}: {detail} (at {_where(error)}); run it again with --debug "
            f"(raysid --debug …) or {DEBUG_ENV}=1 for the traceback, and report it if it looks like a bug")


def _where(error: BaseException) -> str:
    """The innermost frame of raysid's own code (else the innermost frame) that the error passed through."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if f.filename.startswith(str(PROJECT)) and "site-packages" not in f.filename]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return "unknown place"
    path = Path(frame.filename)
    shown = path.relative_to(PROJECT) if path.is_relative_to(PROJECT) else path.name
    return f"{shown}:{frame.lineno}"
