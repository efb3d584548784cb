"""Live progress from a real small sweep: the real trainable sends its stages and epochs to the board, the
real Tune callback builds one row per grid point; the table's cells are checked against the trials' results."""

from __future__ import annotations

import io
import uuid

import pytest
import yaml
from ray import tune
from rich.console import Console

from raysid.sweep.progress import SweepProgress, TrialRow, apply_event, progress_table
from raysid.sweep.runner import param_space, trainable, tune_config
from raysid.sweep.space import find_study, parse_study


@pytest.mark.slow
def test_the_table_of_a_real_sweep_shows_every_point_its_stages_epochs_and_metric(ray_local, tmp_path, tiny_overrides):
    data = yaml.safe_load(find_study("musicrec-ratio").read_text())
    data.update(name="tiny-progress", seeds=[0], smoke={**tiny_overrides, "recommender.epochs": 2})
    data["axes"]["ratio"]["grid"].pop("2:2")
    study = parse_study(data, str(tmp_path / "tiny-progress.yaml"))
    board = f"raysid-progress-{uuid.uuid4().hex}"
    screen = io.StringIO()
    progress = SweepProgress(2, enabled=True, metric=study.metric, board=board,
                             console=Console(file=screen, width=200, force_terminal=True))
    fn = tune.with_parameters(trainable, study=study, smoke=True, cache_root=str(tmp_path / "cache"),
                              report_epochs=True, board=board)
    grid = tune.Tuner(fn, param_space=param_space(study, True), tune_config=tune_config(study, 2),
                      run_config=tune.RunConfig(name="progress", storage_path=str(tmp_path / "tune"), verbose=0,
                                                callbacks=[progress])).fit()
    finals = {f"ratio={r.config['ratio']} seed=0": r.metrics for r in grid}
    assert set(progress.rows) == set(finals) == {"ratio=1:3 seed=0", "ratio=3:1 seed=0"}  # by grid point
    for label, row in progress.rows.items():
        assert row.state == "done"
        assert row.stages[:2] == ["checking the result cache", "dataset"]  # what runs before any epoch is visible
        assert {"collaborative", "tokenizer", "recommender"} <= set(row.stages)
        assert row.stage == "recommender" and (row.epoch, row.epochs) == (2, 2)  # epoch i of N
        assert row.metric == ("valid/ndcg@10", pytest.approx(finals[label]["valid/ndcg@10"]))
        assert 0 < row.elapsed(0) and row.eta() is None  # ended: no ETA
    lines = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
             for line in screen.getvalue().splitlines()[-8:] if line.count("│") == 8}  # the last table drawn
    for label, cells in lines.items():
        assert cells[:3] == ["done", "recommender", "2/2"]
        assert cells[3] == f"valid/ndcg@10 {finals[label]['valid/ndcg@10']:.4f}"
    assert set(lines) == set(finals)


def test_a_running_trial_shows_epoch_i_of_n_its_latest_loss_and_the_stage_eta():
    row = TrialRow("ratio=1:3 seed=0", state="running", started=0.0)
    events = [{"stage": "dataset", "time": 100.0}, {"stage": "tokenizer", "time": 110.0},
              {"stage": "tokenizer", "epoch": 1, "epochs": 4, "values": {"tokenizer/loss": 0.5}, "time": 115.0},
              {"stage": "tokenizer", "epoch": 2, "epochs": 4, "values": {"tokenizer/loss": 0.25}, "time": 120.0}]
    for event in events:
        apply_event(row, event, "valid/ndcg@10")
    assert row.stages == ["dataset", "tokenizer"] and (row.epoch, row.epochs) == (2, 4)
    assert row.metric == ("tokenizer/loss", 0.25) and row.eta() == pytest.approx(10.0)  # (120 − 110) / 2 per epoch × 2
    apply_event(row, {"stage": "recommender", "epoch": 1, "epochs": 3, "values": {"valid/ndcg@10": 0.1}, "time": 130.0},
                "valid/ndcg@10")  # its first epoch started the stage: timed from the last event
    assert row.stage == "recommender" and row.eta() == pytest.approx(20.0) and row.metric == ("valid/ndcg@10", 0.1)
    screen = io.StringIO()
    Console(file=screen, width=160).print(progress_table([row], 4, 1, 0, 60.0))
    line = next(line for line in screen.getvalue().splitlines() if "ratio=1:3" in line)
    assert [c.strip() for c in line.split("│")[2:-1]][:4] == ["running", "recommender", "1/3", "valid/ndcg@10 0.1000"]
    assert "trials: 1/4 ended, 1:00, about 3:00 left" in screen.getvalue()


@pytest.mark.parametrize("signalled, expected", [(False, "stopped early"), (True, "interrupted")])
def test_a_trial_ended_without_its_final_report_reads_interrupted_after_a_stop_signal(capsys, signalled, expected):
    """Tune ends the trials a stop signal cut short as if they completed; without the signal only a scheduler
    ends a trial before its final report."""
    from types import SimpleNamespace

    from raysid.sweep import interrupt

    progress = SweepProgress(total=2, console=Console(file=io.StringIO()))
    progress.setup()
    trial = SimpleNamespace(trial_id="t1", config={"ratio": "1:3", "seed": 0})
    with interrupt.stop_signals():
        if signalled:
            interrupt._received.append("SIGINT")
        progress.on_trial_complete(0, [], trial)
    assert f"[1/2] ratio=1:3 seed=0: {expected}, " in capsys.readouterr().out


def test_a_lost_board_leaves_the_sweep_running_with_one_warning(ray_local, capsys):
    """A board whose node died (or that was killed) must not end the sweep: the driver warns once and goes on."""
    progress = SweepProgress(total=1, board=f"raysid-progress-{uuid.uuid4().hex}", console=Console(file=io.StringIO()))
    progress.setup()
    progress.poll()  # a live board: no events, no warning
    assert progress.board is not None and capsys.readouterr().err == ""
    ray_local.kill(progress.board)
    progress.poll()
    assert progress.board is None
    assert capsys.readouterr().err.startswith("warning: the live progress board was lost (")
    progress.poll()
    progress.on_experiment_end([])  # nothing left to read or kill
    assert capsys.readouterr().err == ""
