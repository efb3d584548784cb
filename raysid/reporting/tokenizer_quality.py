"""``raysid tokenize``: fit (or reuse) one tokenizer and write its semantic-ID quality report."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from raysid.cache import ArtifactStore
from raysid.config import ConfigError
from raysid.pipeline.trial import identifiers, prepare
from raysid.trial_config import TrialConfig
from raysid.quality import plot_usage, render_report


def tokenize(config: TrialConfig, store: ArtifactStore, out_dir: Path, title: str) -> dict[str, Path]:
    """Run the stages up to the tokenizer; write quality.md, usage.png and semantic_ids.parquet to out_dir."""
    if config.tokenizer is None:
        raise ConfigError("tokenizer.kind: 'none' has no tokenizer to fit; choose a study point with a tokenizer")
    artifact = prepare(config, store).tokenizer
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"report": out_dir / "quality.md", "usage": out_dir / "usage.png", "ids": out_dir / "semantic_ids.parquet"}
    paths["report"].write_text(render_report(artifact.quality, title))
    plot_usage(pl.read_parquet(artifact.folder / "usage.parquet"), paths["usage"])
    identifiers(artifact.sids, config.semantic_ids).to_frame().write_parquet(paths["ids"])
    return paths
