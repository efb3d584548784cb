"""FusID's GPT-2 recommender on the built-in catalog: fit time, beam vs exact ranking, MRR and Recall@1..20.

Identifiers: residual k-means (64, 64) over the z-scored modalities plus the tie-break digit; leave-one-out
split; popularity as the floor. Beam search ranks every test user; the exact full-catalogue scores
(``score_items``) cost users x items teacher-forced rows, so they rank only the first ``exact_users``.

Run from the repository root:
``PYTHONPATH=. python benchmarks/gpt2_catalog.py [epochs] [n_embd] [learning_rate] [exact_users]``. Not a test.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from raysid.data.catalog import CatalogConfig, generate_catalog
from raysid.data.splits import leave_one_out
from raysid.features.modalities import FeatureConfig, build_features
from raysid.metrics.ranking import (
    metrics_from_ranks,
    ranking_metrics,
    ranks_from_scores,
)
from raysid.recommenders.base import RecommenderInputs
from raysid.recommenders.gpt2 import GPT2Recommender, GPT2RecommenderConfig
from raysid.recommenders.popularity import PopularityRecommender
from raysid.semantic_ids.table import SemanticIds
from raysid.tokenizers.base import TokenizerInputs
from raysid.tokenizers.residual_kmeans import (
    ResidualKMeansConfig,
    ResidualKMeansTokenizer,
)

KS = (1, 5, 10, 20)  # FusID's Recall@K


def fusid_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{key} {value:.4f}" for key, value in metrics.items() if key.startswith(("mrr", "recall")))


def main(epochs: int = 10, n_embd: int = 64, learning_rate: float = 3e-3, exact_users: int = 200) -> None:
    torch.set_num_threads(1)
    dataset = generate_catalog(CatalogConfig())
    splits = leave_one_out(dataset.sequences)
    features = build_features(dataset, FeatureConfig(), splits.train_items())
    tokenizer = ResidualKMeansTokenizer(ResidualKMeansConfig(codebook_sizes=(64, 64)))
    tokenizer.fit(TokenizerInputs(features, splits.train_items()))
    sids = SemanticIds.from_codes(tokenizer.encode(features), tokenizer.position_names, tokenizer.codebook_sizes)
    config = GPT2RecommenderConfig(epochs=epochs, n_embd=n_embd, learning_rate=learning_rate, device="cpu")
    model = GPT2Recommender(config, sids)
    print(f"{sids.num_items} items, identifier sizes {sids.codebook_sizes}, {len(splits.train)} playlists, "
          f"{model.num_parameters():,} parameters")
    start = time.perf_counter()
    model.fit(RecommenderInputs(splits.train, splits.valid, on_epoch=lambda e, m: print(f"epoch {e}: {m}", flush=True)))
    print(f"fit: {time.perf_counter() - start:.1f} s")
    test = splits.test
    start = time.perf_counter()
    items, _ = model.beam_search(test.histories)
    print(f"beam {config.beam_size}: {time.perf_counter() - start:.1f} s for {len(test)} users")
    popularity = PopularityRecommender(sids.num_items).fit(RecommenderInputs(splits.train)).recommend(test.histories, 20)
    print(f"gpt2 beam   ({len(test)} users): {fusid_metrics(ranking_metrics(items, test.targets, KS))}")
    print(f"popularity  ({len(test)} users): {fusid_metrics(ranking_metrics(popularity, test.targets, KS))}")
    users, targets = test.histories[:exact_users], test.targets[:exact_users]
    start = time.perf_counter()
    scores = model.score_items(users)
    print(f"exact: {time.perf_counter() - start:.1f} s for {len(users)} users x {sids.num_items} items")
    exact_top = np.argsort(-scores, axis=1, kind="stable")[:, :20]
    print(f"beam top-20 list == exact top-20 list for {(items[:exact_users] == exact_top).all(axis=1).mean():.1%} of users")
    print(f"gpt2 beam   ({len(users)} users): {fusid_metrics(ranking_metrics(items[:exact_users], targets, KS))}")
    print(f"gpt2 exact  ({len(users)} users): {fusid_metrics(metrics_from_ranks(ranks_from_scores(scores, targets), KS))}")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    main(*(cast(value) for cast, value in zip((int, int, float, int), arguments)))
