"""The recommender stage of a trial: build the configured recommender, train it, evaluate it as its paper does.

Every recommender (``t5``, ``gpt2``, ``sasrec``, ``popularity``) goes through the same steps and the metrics
never ask which model they have:

- ranking: HR, NDCG, Recall at ``evaluation.ks`` and MRR over the full catalogue on valid and test (beam
  ranking for the generative models), beside the popularity floor (``popularity/test/...``);
- beyond accuracy on test: coverage, distinct items and artists per list, repetition, and HR/NDCG by
  history-length bucket (``raysid.metrics.report``);
- feedback: when the dataset has played/skipped feedback and the model scores it (SASRec), the stratified
  AUC on (played, skipped) pairs per session of the test period, overall and by history length, and the
  ranking metrics for each period's first played track. Every other model on such a dataset is ranked on
  those same first played tracks: the pipeline's one split (``decide_split``) is the feedback split.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from raysid.config import ConfigError
from raysid.data.dataset import Dataset, EvalSet, Splits
from raysid.data.splits import FeedbackSplits, TrialSplit
from raysid.metrics.auc import evaluate_feedback
from raysid.metrics.ranking import ranking_metrics
from raysid.metrics.report import recommendation_report
from raysid.recommenders import build_recommender
from raysid.recommenders.popularity import PopularityRecommender
from raysid.semantic_ids.table import SemanticIds

if TYPE_CHECKING:
    from raysid.pipeline import TrialConfig

OnEpoch = Callable[[str, int, dict[str, float]], None]


def evaluate(config: TrialConfig, sids: SemanticIds, dataset: Dataset, split: TrialSplit,
             on_epoch: OnEpoch | None) -> dict[str, float]:
    """Train ``config.recommender_kind`` on the unique identifiers ``sids``; its metrics and the popularity floor.

    ``split`` is the trial's one split (``raysid.data.splits.decide_split``, made by the pipeline); nothing
    here splits again.
    """
    model = build(config, sids, dataset)
    if _scores_feedback(config, split):
        return _evaluate_with_feedback(config, model, dataset, split.feedback, on_epoch)
    splits = split.splits
    metrics = _fit(model, config, fit_sequences(config, split), _subsample(splits.valid, config), on_epoch,
                   _epoch_ranking(config, splits))
    popularity = PopularityRecommender(num_items=sids.num_items).fit(splits.train)
    for name, evalset in (("valid", splits.valid), ("test", splits.test)):
        evalset = _subsample(evalset, config)
        metrics.update(_ranking(f"{name}/", model, evalset, config, dataset if name == "test" else None))
        metrics.update(_ranking(f"popularity/{name}/", popularity, evalset, config, None))
    return metrics | _parameters(model)


def build(config: TrialConfig, sids: SemanticIds, dataset: Dataset) -> Any:
    """The configured recommender, seeded with the trial's seed, its data-following defaults decided by
    ``dataset``; SASRec's components from the items frame."""
    recommender = config.recommender
    if hasattr(recommender, "seed"):
        recommender = replace(recommender, seed=config.seed)
    if hasattr(recommender, "for_data"):  # defaults that follow the data (SASRec: no feedback, no feedback loss)
        recommender = recommender.for_data(has_feedback=dataset.feedback is not None)
    names = getattr(recommender, "components", ())
    missing = [name for name in names if name not in dataset.items.columns]
    if missing:
        raise ConfigError(
            f"recommender.components: dataset {dataset.name!r} has no item column {missing[0]!r}; "
            f"its columns are: {', '.join(dataset.items.columns)}"
        )
    attributes = {name: dataset.items[name].to_numpy() for name in names} or None
    return build_recommender(config.recommender_kind, recommender, sids=sids, attributes=attributes)


def _fit(model: Any, config: TrialConfig, train: list[np.ndarray], valid: Any, on_epoch: OnEpoch | None,
         epoch_eval: Callable | None, **extra: Any) -> dict[str, float]:
    """``model.fit`` with the trial's training section, epoch reports and per-epoch ranking where it takes them;
    the training throughput ``time/train_items_per_s`` (sequence positions times epochs per second of fit)."""
    accepted = inspect.signature(model.fit).parameters
    options = {"valid": valid, "training": config.training, "epoch_eval": epoch_eval, **extra}
    options["on_epoch"] = (lambda epoch, values: on_epoch("recommender", epoch, values)) if on_epoch else None
    started = time.perf_counter()
    model.fit(train, **{key: value for key, value in options.items() if key in accepted})
    items = sum(len(sequence) for sequence in train) * getattr(config.recommender, "epochs", 1)
    return {"time/train_items_per_s": items / max(time.perf_counter() - started, 1e-9)}


def _ranking(prefix: str, model: Any, evalset: EvalSet, config: TrialConfig, dataset: Dataset | None) -> dict[str, float]:
    """Ranking metrics of one split, with the beyond-accuracy report when ``dataset`` is given (test)."""
    ks = config.evaluation.ks
    started = time.perf_counter()
    ranked = model.recommend(evalset.histories, max(ks))
    milliseconds = 1000 * (time.perf_counter() - started) / max(len(evalset), 1)
    metrics = ranking_metrics(ranked, evalset.targets, ks)
    if dataset is None:
        return _prefixed(prefix, metrics)
    report = recommendation_report(ranked, evalset.histories, evalset.targets, dataset.items, ks)
    metrics |= {key: value for key, value in report.items() if math.isfinite(value)}  # empty buckets: no value
    return _prefixed(prefix, metrics) | {"time/recommend_ms_per_user": milliseconds}  # test: beam search of T5/GPT-2


def fit_sequences(config: TrialConfig, split: TrialSplit) -> list[np.ndarray]:
    """The sequences the recommender of ``config`` trains on: the training part of the trial's split."""
    return split.feedback.train if _scores_feedback(config, split) else split.splits.train


def _scores_feedback(config: TrialConfig, split: TrialSplit) -> bool:
    """Whether the recommender trains on and is scored by played/skipped feedback (SASRec on a feedback split)."""
    return config.recommender_kind == "sasrec" and split.feedback is not None


def _evaluate_with_feedback(config: TrialConfig, model: Any, dataset: Dataset, splits: FeedbackSplits,
                            on_epoch: OnEpoch | None) -> dict[str, float]:
    """SASRec on played/skipped feedback: train on the sessions' earlier tracks, AUC on their last period."""
    metrics = _fit(model, config, splits.train, splits.valid, on_epoch, None, feedback=splits.train_feedback)
    ks = config.evaluation.ks
    metrics |= evaluate_feedback(model, splits.valid, prefix="valid/", ks=ks)
    metrics |= evaluate_feedback(model, splits.test, prefix="test/", ks=ks)
    played = splits.test.next_played()
    popularity = PopularityRecommender(num_items=dataset.num_items).fit(splits.train)
    metrics |= _prefixed("popularity/test/", ranking_metrics(popularity.recommend(played.histories, max(ks)), played.targets, ks))
    return metrics | _parameters(model)


def _parameters(model: Any) -> dict[str, float]:
    """Trainable parameter counts (total, and SASRec's item-representation share) where the model has them."""
    counts: dict[str, float] = {}
    if hasattr(model, "num_parameters"):
        counts["recommender/parameters"] = float(model.num_parameters())
    if hasattr(model, "parameter_counts"):
        counts |= {f"recommender/parameters_{name}": float(v) for name, v in model.parameter_counts().items()}
    return counts


def _epoch_ranking(config: TrialConfig, splits: Splits) -> Callable | None:
    """Validation ranking after every recommender epoch when ``evaluation.epoch_users`` > 0 (what ASHA reads)."""
    users = config.evaluation.epoch_users
    if not users:
        return None
    sample, ks = _subsample(splits.valid, config, users), config.evaluation.ks

    def rank(model: Any) -> dict[str, float]:
        return _prefixed("valid/", ranking_metrics(model.recommend(sample.histories, max(ks)), sample.targets, ks))

    return rank


def _subsample(evalset: EvalSet, config: TrialConfig, limit: int | None = None) -> EvalSet:
    limit = config.evaluation.max_users if limit is None else limit
    if not limit or len(evalset) <= limit:
        return evalset
    chosen = np.sort(np.random.default_rng(config.seed).choice(len(evalset), size=limit, replace=False))
    return EvalSet([evalset.histories[i] for i in chosen], evalset.targets[chosen])


def _prefixed(prefix: str, values: Mapping[str, float]) -> dict[str, float]:
    return {f"{prefix}{key}": float(value) for key, value in values.items()}
