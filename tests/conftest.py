"""Shared fixtures: one real local Ray per test session (starting Ray costs seconds)."""

import os
import sys
from pathlib import Path

import pytest

import raysid  # noqa: F401  first, so that its pinned numeric kernels (raysid/kernels.py) apply to every test

ROOT = Path(__file__).resolve().parents[1]
# The tests run commands of the interpreter's environment (`ray start`, a job's `python`), also when it is not
# activated (`.venv/bin/python -m pytest`, as the README and .ci/run call it).
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray cluster on loopback with 2 CPUs, shared by every test that needs one."""
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


TINY = {
    "dataset.num_tracks": 120, "dataset.num_playlists": 90, "dataset.num_genres": 3,
    "dataset.subgenres_per_genre": 2, "dataset.num_artists": 12, "dataset.text_dim": 16,
    "dataset.audio_dim": 8, "dataset.num_tags": 12, "dataset.max_length": 12,
    "tokenizer.codebook_size": 8, "tokenizer.latent_dim": 8, "tokenizer.hidden_dims": [32],
    "tokenizer.epochs": 3, "collaborative.epochs": 1, "collaborative.hidden_size": 16,
    "recommender.epochs": 1, "recommender.d_model": 16, "recommender.d_ff": 32, "recommender.num_layers": 1,
    "recommender.num_heads": 2, "recommender.d_kv": 8, "recommender.beam_size": 10,
}


@pytest.fixture
def tiny_overrides():
    """Dotted overrides that shrink any study to a few seconds per trial."""
    return dict(TINY)
