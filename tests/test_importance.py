"""The search report: best trials and fANOVA parameter importance."""

import numpy as np
import polars as pl

from raysid.importance import best_trials, parameter_importance, render_search
from raysid.results import ReportLayout, write_report


def _trials(n=40):
    rng = np.random.default_rng(0)
    alpha = 10 ** rng.uniform(-3, -1, n)
    levels = rng.choice(["2 (1:1)", "4 (2:2)"], n)
    noise = rng.uniform(0, 1, n)
    score = np.log10(alpha) + 0.01 * noise  # only alpha matters
    return pl.DataFrame({"alpha": [str(a) for a in alpha], "levels": levels, "noise": [str(x) for x in noise],
                         "seed": [0] * n, "valid/ndcg@10": score})


def test_best_trials_are_sorted_by_the_metric():
    trials = _trials()
    best = best_trials(trials, ("alpha",), "valid/ndcg@10", "max", 3)
    expected = sorted(trials["valid/ndcg@10"].to_list(), reverse=True)[:3]
    assert best["valid/ndcg@10"].to_list() == expected
    lowest = best_trials(trials, ("alpha",), "valid/ndcg@10", "min", 1)
    assert lowest["valid/ndcg@10"][0] == min(trials["valid/ndcg@10"])


def test_the_parameter_that_drives_the_metric_is_the_most_important():
    importance = parameter_importance(_trials(), ("alpha", "levels", "noise"), "valid/ndcg@10")
    assert set(importance) == {"alpha", "levels", "noise"}
    assert abs(sum(importance.values()) - 1) < 1e-6
    assert importance["alpha"] > 0.8 > importance["noise"] + importance["levels"]


def test_search_sections_are_written_into_the_summary(tmp_path):
    layout = ReportLayout(rows=("levels",), metrics=("valid/ndcg@10",), best="valid/ndcg@10", baseline=None,
                          top=3, importance=("alpha", "levels", "noise"))
    paths = write_report(_trials(), layout, tmp_path)
    text = paths["markdown"].read_text()
    assert "## Best 3 trials by valid/ndcg@10" in text and "Parameter importance" in text and "| alpha |" in text
    assert render_search(_trials(1), ("alpha",), "valid/ndcg@10", "max", 5)[-1].startswith("| ")  # one trial: no importance
