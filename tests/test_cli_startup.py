"""A CLI that answers at once: help, the study list, a study's description and input errors import none of
torch, transformers, Ray or MLflow (configs and registries are importable without them).

Each command runs in a fresh interpreter under ``python -X importtime``, whose report names every module the
process imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "ray", "mlflow")


def run_cli(*args: str, cwd: Path = ROOT) -> tuple[subprocess.CompletedProcess, set[str]]:
    """``raysid ARGS`` in a fresh interpreter: the finished process and the top-level packages it imported."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    return done, imported_packages(done.stderr)


def imported_packages(report: str) -> set[str]:
    """The top-level packages named in a ``-X importtime`` report."""
    return {line.split("|")[-1].strip().split(".")[0] for line in report.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_the_report_names_the_heavy_packages_when_they_are_imported():
    """The check can fail: a command that trains (here only its import) shows torch in the report."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import raysid.pipeline.trial"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert "torch" in imported_packages(done.stderr) and done.returncode == 0


@pytest.mark.parametrize(("args", "code", "shown"), [
    (("--help",), 0, "sweeps and ablations"),
    (("studies",), 0, "musicrec-ratio"),
    (("show", "musicrec-ratio"), 0, "tokenizer.kind = musicrec"),
    (("show", "musicrec-rati"), 2, "did you mean 'musicrec-ratio'?"),
])
def test_answers_without_torch_transformers_ray_or_mlflow(args, code, shown):
    done, imported = run_cli(*args)
    assert done.returncode == code, done.stdout + done.stderr[-2000:]
    assert shown in " ".join(done.stdout.split())
    assert not imported & set(HEAVY), f"raysid {' '.join(args)} imported {sorted(imported & set(HEAVY))}"


def test_a_config_error_answers_without_them_too(tmp_path):
    study = tmp_path / "bad.yaml"
    study.write_text("name: bad\nbase: {tokenizer: {kind: musicrec, codebook_sise: 8}}\n")
    done, imported = run_cli("show", str(study))
    assert done.returncode == 2 and "unknown key 'codebook_sise'" in " ".join(done.stdout.split())
    assert not imported & set(HEAVY)
