"""A killed sweep that is never resumed: the next sweep into the same results folder ends its RUNNING runs."""

from mlflow.tracking import MlflowClient

from raysid.sweep.space import load_study
from raysid.sweep.tracking import MLflowTracking


def _state(client: MlflowClient, run_id: str) -> tuple[str, str, str]:
    run = client.get_run(run_id)
    return run.info.status, run.data.tags.get("raysid.status", ""), run.data.tags.get("raysid.superseded_by", "")


def _killed_sweep(uri: str, study, sweep_id: str) -> list[str]:
    """The parent run and one trial run of a sweep whose driver died after starting them (both left RUNNING)."""
    dead = MLflowTracking(uri, study, smoke=True, artifact_root=None, sweep_id=sweep_id)
    dead.setup()
    trial = dead.client.create_run(dead.experiment_id, run_name=f"trial of {sweep_id}",
                                   tags={"raysid.sweep_id": sweep_id, "mlflow.parentRunId": dead.parent_run_id})
    return [dead.parent_run_id, trial.info.run_id]


def test_the_next_sweep_into_the_folder_ends_a_dead_sweeps_runs(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    study = load_study("musicrec-ratio")
    client = MlflowClient(uri)
    dead = _killed_sweep(uri, study, "dead")

    other = MLflowTracking(uri, study, smoke=True, artifact_root=None, sweep_id="other")  # a store it does not own
    other.setup()
    assert [_state(client, run) for run in dead] == [("RUNNING", "", "")] * 2

    fresh = MLflowTracking(uri, study, smoke=True, artifact_root=None, sweep_id="fresh", owns_store=True)
    fresh.setup()
    assert [_state(client, run) for run in [*dead, other.parent_run_id]] == [("KILLED", "interrupted", "fresh")] * 3
    assert client.get_run(dead[0]).data.tags["raysid.signal"] == "none: the driver died"
    assert _state(client, fresh.parent_run_id) == ("RUNNING", "", "")  # its own run is untouched
