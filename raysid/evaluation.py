"""The recommender stage of a trial: build the configured recommender, train it, evaluate it as its paper does.

Every recommender (``t5``, ``gpt2``, ``sasrec``, ``popularity``) goes through the same steps and the metrics
never ask which model they have:

- ranking: HR, NDCG, Recall at ``evaluation.ks`` and MRR over the full catalogue on valid and test (beam
  ranking for the generative models), beside the popularity floor (``popularity/test/...``);
- beyond accuracy on test: coverage, distinct items and artists per list, repetition, and HR/NDCG by
  history-length bucket (``raysid.metrics.report``);
- feedback: when the dataset has played/skipped feedback and the model declares it scores it (SASRec), the stratified
  AUC on (played, skipped) pairs per session of the test period, overall and by history length, and the
  ranking metrics for each period's first played track. Every other model on such a dataset is ranked on
  those same first played tracks: the pipeline's one split (``decide_split``) is the feedback split.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from raysid.config import ConfigError
from raysid.data.dataset import Dataset, EvalSet, Splits
from raysid.data.splits import FeedbackSplits, TrialSplit
from raysid.metrics.auc import evaluate_feedback, feedback_metric_names
from raysid.metrics.ranking import ranking_metric_names, ranking_metrics
from raysid.metrics.report import recommendation_report, report_metric_names
from raysid.recommenders import ItemCatalog, Recommender, RecommenderInputs, build_recommender
from raysid.recommenders.popularity import PopularityRecommender
from raysid.semantic_ids.table import SemanticIds
from raysid.trial_config import TrialConfig

OnEpoch = Callable[[str, int, dict[str, float]], None]


def evaluate(config: TrialConfig, sids: SemanticIds | None, dataset: Dataset, split: TrialSplit,
             on_epoch: OnEpoch | None) -> dict[str, float]:
    """Train ``config.recommender_kind`` on the unique identifiers ``sids`` (None: a trial without a
    tokenizer, for a model that reads none); its metrics and the popularity floor.

    ``split`` is the trial's one split (``raysid.data.splits.decide_split``, made by the pipeline); nothing
    here splits again.
    """
    model = build(config, sids, dataset)
    if scores_feedback(config, split):
        return _evaluate_with_feedback(config, model, dataset, split.feedback, on_epoch)
    splits = split.splits
    metrics = _fit(model, config, RecommenderInputs(fit_sequences(config, split), valid=_subsample(splits.valid, config),
                                                    epoch_eval=_epoch_ranking(config, splits)), on_epoch)
    popularity = PopularityRecommender(num_items=dataset.num_items).fit(RecommenderInputs(splits.train))
    for name, evalset in (("valid", splits.valid), ("test", splits.test)):
        evalset = _subsample(evalset, config)
        metrics.update(_ranking(f"{name}/", model, evalset, config, dataset if name == "test" else None))
        metrics.update(_ranking(f"popularity/{name}/", popularity, evalset, config, None))
    return metrics | _parameters(model, config)


def metric_names(config: TrialConfig) -> set[str]:
    """The names ``evaluate`` reports for ``config``: ranking on valid and test (and the popularity floor's),
    beyond accuracy on test, feedback AUC when the model scores feedback, and the parameter counts."""
    capabilities, ks = config.recommender.capabilities(), config.evaluation.ks
    ranking = ranking_metric_names(ks)
    names = {f"{prefix}{split}/{name}" for prefix in ("", "popularity/") for split in ("valid", "test") for name in ranking}
    names |= {f"test/{name}" for name in report_metric_names(ks)}
    if capabilities.scores_feedback:  # on data with played/skipped feedback
        names |= {f"{split}/{name}" for split in ("valid", "test") for name in feedback_metric_names(ks)}
    return names | set(_parameters_names(capabilities.parameter_parts))


def build(config: TrialConfig, sids: SemanticIds | None, dataset: Dataset) -> Recommender:
    """The configured recommender, seeded with the trial's seed when it takes one, built on the dataset's
    catalogue (its data-following defaults decided by the dataset's feedback) with the item attributes its
    config embeds."""
    recommender = config.recommender
    capabilities = recommender.capabilities()
    if capabilities.seeded:
        recommender = replace(recommender, seed=config.seed)
    names = capabilities.item_attributes
    missing = [name for name in names if name not in dataset.items.columns]
    if missing:
        raise ConfigError(
            f"recommender.components: dataset {dataset.name!r} has no item column {missing[0]!r}; "
            f"its columns are: {', '.join(dataset.items.columns)}"
        )
    attributes = {name: dataset.items[name].to_numpy() for name in names} or None
    catalog = ItemCatalog(sids, dataset.num_items, attributes, has_feedback=dataset.feedback is not None)
    return build_recommender(config.recommender_kind, recommender, catalog)


def _fit(model: Recommender, config: TrialConfig, inputs: RecommenderInputs, on_epoch: OnEpoch | None) -> dict[str, float]:
    """``model.fit`` with the trial's training section and the recommender's epoch reports; the training
    throughput ``time/train_items_per_s``: sequence positions times the epochs it ran (1 when it reports none)
    per second of fit."""
    epochs = []

    def report(epoch: int, values: dict[str, float]) -> None:
        epochs.append(epoch)
        if on_epoch is not None:
            on_epoch("recommender", epoch, values)

    started = time.perf_counter()
    model.fit(replace(inputs, training=config.training, on_epoch=report))
    items = sum(len(sequence) for sequence in inputs.sequences) * max(len(epochs), 1)
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
    return split.feedback.train if scores_feedback(config, split) else split.splits.train


def scores_feedback(config: TrialConfig, split: TrialSplit) -> bool:
    """Whether the recommender trains on and is scored by played/skipped feedback: it declares it does, and
    the split is a feedback split."""
    return config.recommender.capabilities().scores_feedback and split.feedback is not None


def _evaluate_with_feedback(config: TrialConfig, model: Any, dataset: Dataset, splits: FeedbackSplits,
                            on_epoch: OnEpoch | None) -> dict[str, float]:
    """A feedback model on played/skipped feedback: train on the sessions' earlier tracks, AUC on their last period."""
    metrics = _fit(model, config, RecommenderInputs(splits.train, valid=splits.valid, feedback=splits.train_feedback),
                   on_epoch)
    ks = config.evaluation.ks
    metrics |= evaluate_feedback(model, splits.valid, prefix="valid/", ks=ks)
    metrics |= evaluate_feedback(model, splits.test, prefix="test/", ks=ks)
    played = splits.test.next_played()
    popularity = PopularityRecommender(num_items=dataset.num_items).fit(RecommenderInputs(splits.train))
    metrics |= _prefixed("popularity/test/", ranking_metrics(popularity.recommend(played.histories, max(ks)), played.targets, ks))
    return metrics | _parameters(model, config)


def _parameters(model: Recommender, config: TrialConfig) -> dict[str, float]:
    """Trainable parameter counts as the model declares them (``parameter_parts``)."""
    counts = model.parameter_counts()
    return {name: float(counts[part]) for name, part in _parameters_names(config.recommender.capabilities().parameter_parts).items()}


def _parameters_names(parts: tuple[str, ...]) -> dict[str, str]:
    """Metric name -> part: ``recommender/parameters`` is the total; a breakdown adds one metric per part."""
    names = {"recommender/parameters": "total"} if "total" in parts else {}
    return names | ({f"recommender/parameters_{part}": part for part in parts} if len(parts) > 1 else {})


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
