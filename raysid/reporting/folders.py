"""Results folders read back: the trials a sweep wrote, the report layout of its study, and its provenance.

A folder is named by its study (``RESULTS_DIR/STUDY``, ``STUDY-smoke`` with ``--smoke``) or given as a path.
A folder given by path finds its layout through the study its ``provenance.json`` names; a variant's name
(``musicrec-ratio-office`` from ``--dataset office``, ``…-paper`` from ``--preset``, ``…-set-HASH`` from
``--set``) falls back to the longest study name it starts with, whose layout it shares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from raysid.config import ConfigError
from raysid.reporting.report import write_report
from raysid.reporting.summary import ReportLayout

TRIALS = "trials.parquet"


@dataclass(frozen=True)
class ResultsFolder:
    path: Path
    study: str  # the study whose layout the folder is read with
    trials: pl.DataFrame
    layout: ReportLayout
    provenance: dict[str, Any] | None  # provenance.json, when the folder has one


def open_results(target: str, results_dir: Path, smoke: bool = False) -> ResultsFolder:
    """The results folder ``target`` names: a folder holding trials.parquet, or a study's folder in results_dir."""
    from raysid.sweep.space import load_study

    given = Path(target).expanduser()
    if given.is_dir():
        if not (given / TRIALS).exists():
            raise ConfigError(f"{given}: no {TRIALS} in this folder; give a results folder a sweep wrote, or a study name")
        provenance = _provenance(given)
        name = str((provenance or {}).get("study") or given.name)
        study = _study_for(name, given)
        return ResultsFolder(given, study.name, pl.read_parquet(given / TRIALS), study.report, provenance)
    study = load_study(target)
    folder = Path(results_dir) / f"{study.name}{'-smoke' if smoke else ''}"
    if not (folder / TRIALS).exists():
        raise ConfigError(f"{folder}: no {TRIALS}; run `raysid sweep {target}{' --smoke' if smoke else ''}` first, "
                          "or point --results-dir at the folder that holds its results")
    return ResultsFolder(folder, study.name, pl.read_parquet(folder / TRIALS), study.report, _provenance(folder))


def _provenance(folder: Path) -> dict[str, Any] | None:
    path = folder / "provenance.json"
    return json.loads(path.read_text()) if path.exists() else None


def _study_for(name: str, folder: Path) -> Any:
    """The study ``name`` or the longest study its name extends (a variant's folder), else one clear error."""
    from raysid.sweep.space import find_study, load_study

    parts = name.removesuffix("-smoke").split("-")
    for end in range(len(parts), 0, -1):
        try:
            path = find_study("-".join(parts[:end]))
        except ConfigError:
            continue
        return load_study(path)
    raise ConfigError(f"{folder}: its study {name!r} is not in search_spaces/, so its report layout is unknown; "
                      "pass the study's name or YAML path instead of the folder")


def render(folder: ResultsFolder, out_dir: Path | None = None) -> dict[str, Path]:
    """Write the folder's summary.md, summary.png/.svg and health plots again from its trials (into out_dir,
    default the folder itself), with its provenance line; nothing runs."""
    return write_report(folder.trials, folder.layout, out_dir or folder.path, folder.provenance)
