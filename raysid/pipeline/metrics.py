"""The metric names a trial reports, as its stages declare them (what study validation accepts).

The tokenizer stage's quality report (``raysid.quality.metric_names``), the recommender stage's ranking,
beyond-accuracy, feedback AUC and parameter counts (``raysid.evaluation.metric_names``), and the
pipeline's own stage times and cache flags. A name with ``*`` stands for the part known only after the
stage ran (a modality, a code position).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from raysid import evaluation, quality
from raysid.data.catalog import CatalogConfig
from raysid.data.catalog import MODALITIES as CATALOG_MODALITIES
from raysid.trial_config import TrialConfig, needs_features, tokenizer_capabilities

STAGES = ("dataset", "features", "collaborative", "tokenizer", "result")  # the artifact stages of raysid.pipeline


def trial_metric_names(config: TrialConfig) -> set[str]:
    """Every metric name a trial of ``config`` may report."""
    capabilities = tokenizer_capabilities(config)
    names = time_metric_names(config)
    if config.tokenizer is not None:
        names |= quality.metric_names(capabilities, feature_modalities(config))
    if config.recommender_kind != "none":
        names |= evaluation.metric_names(config)
    return names


def time_metric_names(config: TrialConfig) -> set[str]:
    """``time/STAGE`` and ``cached/STAGE`` of the stages the trial fetches, the trial's and the recommender's time,
    the result stage's cost (raysid/cost.py) and the recommender's throughput."""
    capabilities = tokenizer_capabilities(config)
    extracts = not isinstance(config.dataset, CatalogConfig) and needs_features(config)  # imported item features
    runs = {"dataset": True, "result": True, "tokenizer": config.tokenizer is not None, "features": extracts,
            "collaborative": capabilities.uses_collaborative or extracts}
    stages = [stage for stage in STAGES if runs[stage]]
    names = {f"{kind}/{stage}" for stage in stages for kind in ("time", "cached")} | {"time/trial", "time/recommender_fit_eval"}
    names |= {"time/result_wall_s", "time/result_cpu_s", "time/result_gpu_s"}
    if config.recommender_kind != "none":
        names |= {"time/train_items_per_s", "time/recommend_ms_per_user"}
    return names


def feature_modalities(config: TrialConfig) -> tuple[str, ...]:
    """The modalities the tokenizer may see: the configured ones, the catalog's, or ("*",) for an imported
    dataset's defaults (known once it is read)."""
    if config.features.modalities:
        return config.features.modalities
    if isinstance(config.dataset, CatalogConfig):
        return CATALOG_MODALITIES
    return config.dataset.modalities or ("*",)


def is_reported(metric: str, names: Iterable[str]) -> bool:
    """Whether ``metric`` is one of ``names`` (a name with ``*`` matches any text in its place)."""
    return any(metric == name or ("*" in name and fnmatch.fnmatchcase(metric, name)) for name in names)
