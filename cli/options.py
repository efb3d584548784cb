"""Checks of option values at parse time, each failing as one line naming the option, the value and what is
allowed (typer adds the option's name: ``Invalid value for '--tolerance': nan is not a finite number >= 0``).

Integer ranges use typer's own ``min=``/``max=``; these callbacks cover what typer does not: finite floats,
Ray and job-server addresses, MLflow store URIs and dataset names.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable
from typing import Any, Optional
from urllib.parse import urlsplit

import typer

TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "file")


def finite(low: float | None = None, high: float | None = None, above: bool = False) -> Callable[[Any], Any]:
    """A callback accepting a finite number in [low, high] (or (low, high] with ``above``); None passes."""
    allowed = " and ".join(part for part in (
        f"{'>' if above else '>='} {low:g}" if low is not None else "", f"<= {high:g}" if high is not None else "") if part)

    def check(value: Optional[float]) -> Optional[float]:
        if value is None:
            return value
        inside = math.isfinite(value) and (low is None or (value > low if above else value >= low)) and (
            high is None or value <= high)
        if not inside:
            raise typer.BadParameter(f"{value!r} is not a finite number{' ' + allowed if allowed else ''}")
        return value

    return check


def _port(text: str) -> bool:
    return text.isdigit() and 0 < int(text) < 65536


def ray_address(value: Optional[str]) -> Optional[str]:
    """A Ray cluster address: auto, HOST:PORT or ray://HOST:PORT (the job server's http:// is for raysid submit)."""
    if value is None or value == "auto":
        return value
    if value.startswith(("http://", "https://")):
        raise typer.BadParameter(f"{value!r} is a job server's address; raysid sweep needs the cluster's "
                                 "(auto, HOST:6379 or ray://HOST:10001): send a job there with raysid submit --address")
    host, sep, port = value.removeprefix("ray://").rpartition(":")
    if not sep or not host or not _port(port) or "/" in host or (host.count(":") and not host.startswith("[")):
        raise typer.BadParameter(f"{value!r}: expected auto, HOST:PORT (e.g. 127.0.0.1:6379) or ray://HOST:PORT "
                                 "(e.g. ray://head:10001)")
    return value


def job_server(value: Optional[str]) -> Optional[str]:
    """A Ray job server address: http(s)://HOST:PORT."""
    if value is None:
        return value
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise typer.BadParameter(f"{value!r}: expected the job server's URL, http://HOST:PORT (e.g. "
                                 "http://127.0.0.1:8265)")
    return value


def tracking_uri(value: Optional[str]) -> Optional[str]:
    """An MLflow store URI of a scheme MLflow knows (a bare path would be MLflow's retired file store)."""
    if value is None:
        return value
    scheme = value.split("://", 1)[0] if "://" in value else ("databricks" if value.startswith("databricks") else "")
    if scheme not in TRACKING_SCHEMES or (scheme == "sqlite" and not value.startswith("sqlite:///")):
        raise typer.BadParameter(f"{value!r}: expected sqlite:///PATH/mlflow.db, http(s)://HOST:PORT (an MLflow "
                                 "server), postgresql://…, mysql://… or databricks")
    return value


def dataset_name(value: Optional[str]) -> Optional[str]:
    """An imported dataset's name (letters, digits, '.', '_', '-')."""
    if value is None:
        return value
    from raysid.config import ConfigError
    from raysid.data.importers.store import check_name

    try:
        return check_name(value)
    except ConfigError as error:
        raise typer.BadParameter(str(error).removeprefix("dataset name ")) from None


def host(value: str) -> str:
    """An interface to bind: an IP address or a name this machine resolves."""
    try:
        socket.getaddrinfo(value, None)
    except (OSError, UnicodeError) as error:
        raise typer.BadParameter(f"{value!r}: not an address or a name this machine resolves ({error}); e.g. "
                                 "127.0.0.1 (this machine only) or 0.0.0.0 (every interface)") from None
    return value
