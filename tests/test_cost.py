"""Cost beside accuracy: what a trial's result cost (wall, CPU, GPU seconds, training items/s, ms per test user),
kept with the result, and the report's cost table."""

import resource
import time

import polars as pl
import pytest
import yaml

from raysid.cache import ArtifactStore
from raysid.config import override
from raysid.cost import Spent
from raysid.pipeline.trial import run_trial
from raysid.trial_config import parse_trial_config
from raysid.reporting.report import cost_table, write_report
from raysid.reporting.summary import ReportLayout
from raysid.sweep.space import find_study, parse_study


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_spent_reads_the_process_cpu_time_as_getrusage_does():
    before, spent = _cpu_seconds(), Spent.start()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # burn CPU in this process
        pass
    metrics = spent.metrics()
    assert metrics["time/result_cpu_s"] == pytest.approx(_cpu_seconds() - before, abs=0.05)
    assert metrics["time/result_wall_s"] >= metrics["time/result_cpu_s"] * 0.5 > 0.1
    assert "time/result_gpu_s" not in metrics  # no CUDA in this process


def test_a_trial_keeps_what_its_result_cost(tmp_path, tiny_overrides):
    config = parse_trial_config(override({"tokenizer": {"kind": "musicrec", "shared_levels": 1, "specific_levels": 1}},
                                         tiny_overrides))
    cold = run_trial(config, ArtifactStore(tmp_path))
    assert cold["time/result_cpu_s"] > 0 and cold["time/result_wall_s"] >= cold["time/recommender_fit_eval"]
    assert cold["time/train_items_per_s"] > 0 and cold["time/recommend_ms_per_user"] > 0
    warm = run_trial(config, ArtifactStore(tmp_path))  # from the stage cache: the cost of making it, not of reading it
    assert warm["cached/result"] == 1.0
    assert all(warm[k] == cold[k] for k in ("time/result_wall_s", "time/result_cpu_s", "time/train_items_per_s"))
    assert warm["time/trial"] < cold["time/result_wall_s"]


def test_the_cost_table_averages_each_group():
    trials = pl.DataFrame({"ratio": ["1:3", "1:3", "3:1"], "seed": [0, 1, 0], "test/ndcg@10": [0.1, 0.2, 0.3],
                           "time/result_wall_s": [10.0, 14.0, 30.0], "time/result_cpu_s": [8.0, 12.0, 20.0],
                           "time/train_items_per_s": [500.0, 700.0, 900.0]})
    lines = cost_table(trials, ReportLayout(rows=("ratio",), metrics=("test/ndcg@10",), best="test/ndcg@10", cost=True))
    assert lines[5] == "| ratio | trials | wall s | CPU s | training items/s |"
    # 1:3: means 12, 10, 600; sample std sqrt(8), sqrt(8), sqrt(20000); half-width t(0.975, 1) * std / sqrt(2)
    assert lines[7] == "| 1:3 | 2 | 12.0000 ± 25.4124 | 10.0000 ± 25.4124 | 600.0 ± 1270.6 |"
    assert lines[8] == "| 3:1 | 1 | 30.0000 (n=1) | 20.0000 (n=1) | 900.0 (n=1) |"


def test_cost_is_a_report_layout_option(tmp_path):
    data = yaml.safe_load(find_study("musicrec-ratio").read_text())
    data["report"]["cost"] = True
    study = parse_study(data, "s.yaml")
    assert study.report.cost and study.report.select == "valid/ndcg@10"
    trials = pl.DataFrame({"ratio": ["1:3"], "seed": [0], **{m: [0.1] for m in study.report.columns},
                           "time/result_wall_s": [3.0]})
    text = write_report(trials, study.report, tmp_path)["markdown"].read_text()
    assert "## Cost" in text and "| 1:3 | 1 | 3.0000 (n=1) |" in text
    data["report"]["cost"] = "yes"
    with pytest.raises(Exception, match="report"):
        parse_study(data, "s.yaml")
