"""The search report: best trials chosen on the validation metric, and fANOVA parameter importance."""

import numpy as np
import optuna
import polars as pl

from raysid.reporting.importance import OUTCOME, best_trials, counted_trials, parameter_importance, render_search, study_from_trials
from raysid.reporting.report import write_report
from raysid.reporting.summary import ReportLayout


def _trials(n=40):
    rng = np.random.default_rng(0)
    alpha = 10 ** rng.uniform(-3, -1, n)
    levels = rng.choice(["2 (1:1)", "4 (2:2)"], n)
    noise = rng.uniform(0, 1, n)
    score = np.log10(alpha) + 0.01 * noise  # only alpha matters
    test = -score  # test ranks the trials the other way round: choosing on test would pick other trials
    return pl.DataFrame({"alpha": [str(a) for a in alpha], "levels": levels, "noise": [str(x) for x in noise],
                         "seed": [0] * n, "valid/ndcg@10": score, "test/ndcg@10": test})


def test_best_trials_are_sorted_by_the_selection_metric_and_show_the_test_metric():
    trials = _trials()
    best = best_trials(trials, ("alpha",), "valid/ndcg@10", "max", 3, show=("test/ndcg@10",))
    expected = sorted(trials["valid/ndcg@10"].to_list(), reverse=True)[:3]
    assert best["valid/ndcg@10"].to_list() == expected and best.columns == ["alpha", "valid/ndcg@10", "test/ndcg@10"]
    assert best["test/ndcg@10"].to_list() == [-v for v in expected]  # the chosen trials' own test values
    lowest = best_trials(trials, ("alpha",), "valid/ndcg@10", "min", 1)
    assert lowest["valid/ndcg@10"][0] == min(trials["valid/ndcg@10"])


def test_the_parameter_that_drives_the_metric_is_the_most_important():
    study = study_from_trials(_trials(), ("alpha", "levels", "noise"), "valid/ndcg@10", "max")
    importance = parameter_importance(study, ("alpha", "levels", "noise"))
    assert set(importance) == {"alpha", "levels", "noise"}
    assert abs(sum(importance.values()) - 1) < 1e-6
    assert importance["alpha"] > 0.8 > importance["noise"] + importance["levels"]


def test_importance_says_which_stored_trials_it_counted():
    """A stored search: stopped trials count at their last value, failed ones are left out and named."""
    study = optuna.create_study(direction="maximize")
    space = {"alpha": optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True)}
    outcomes = ["finished"] * 3 + ["stopped early at epoch 1"] * 2
    for i, outcome in enumerate(outcomes):
        study.add_trial(optuna.trial.create_trial(params={"alpha": 10 ** (-3 + i / 3)}, distributions=space,
                                                  value=float(i), user_attrs={OUTCOME: outcome}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={"alpha": 0.05},
                                              distributions=space, user_attrs={OUTCOME: "failed"}))
    assert counted_trials(study) == ("Counted 5 trials (3 finished, 2 stopped early); a trial stopped early counts "
                                     "at its last reported value; left out 1 without a value (1 failed).")
    assert parameter_importance(study, ("alpha",)) == {"alpha": 1.0}


def test_search_sections_are_written_into_the_summary(tmp_path):
    layout = ReportLayout(rows=("levels",), metrics=("test/ndcg@10",), best="test/ndcg@10", baseline=None,
                          top=3, importance=("alpha", "levels", "noise"), select="valid/ndcg@10", select_mode="max")
    paths = write_report(_trials(), layout, tmp_path)
    text = paths["markdown"].read_text()
    assert "## Best 3 trials by valid/ndcg@10" in text and "| alpha | levels | noise | valid/ndcg@10 | test/ndcg@10 |" in text
    assert "## Parameter importance for valid/ndcg@10" in text and "Counted 40 trials (40 finished)." in text
    assert render_search(_trials(1), layout)[-1].startswith("| ")  # one trial: no importance
