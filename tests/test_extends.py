"""Studies as overrides: `extends:` merges a study over its parent chain; bad chains fail in one line."""

import dataclasses
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from raysid.config import ConfigError
from raysid.sweep.extends import DELETE, StudyLoader, changes, merge
from raysid.sweep.space import STUDY_DIRS, changes_from_parent, load_study, parse_study, self_contained

SHIPPED = Path(__file__).resolve().parents[1] / "search_spaces"
PARENT = """
name: parent
description: the parent
base:
  dataset: {num_tracks: 300, num_playlists: 200, num_artists: 40}
  tokenizer: {kind: rqvae, codebook_sizes: [8, 8], latent_dim: 16}
  recommender: {kind: none}
axes:
  tokenizer.latent_dim: {grid: [8, 16]}
  depth:
    grid:
      two: {tokenizer.codebook_sizes: [8, 8]}
      three: {tokenizer.codebook_sizes: [8, 8, 8]}
seeds: [0, 1, 2]
metric: retrieval/hit@10
report: {rows: [depth], metrics: [retrieval/hit@10, sid/cur], baseline: null, title: parent}
smoke: {dataset.num_tracks: 100}
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_a_child_states_only_what_differs_and_a_grandchild_extends_it(tmp_path):
    _write(tmp_path, "parent", PARENT)
    child = load_study(_write(tmp_path, "child", """
extends: parent
name: child
base:
  tokenizer: {latent_dim: 32}          # a key of a mapping: merged
axes:
  tokenizer.latent_dim: !delete        # removed
  depth: {grid: {four: {tokenizer.codebook_sizes: [8, 8, 8, 8]}}}   # a label added to the parent's
seeds: [0]                             # a list: replaced
report: {title: child}
"""))
    assert child.name == "child" and child.description == ""  # neither is inherited
    assert [axis.name for axis in child.axes] == ["depth"] and child.axes[0].values == ("two", "three", "four")
    assert child.seeds == (0,) and child.report.title == "child" and child.report.metrics == ("retrieval/hit@10", "sid/cur")
    config = child.resolve({"depth": "four", "seed": 0}, smoke=True)
    assert (config.tokenizer.latent_dim, config.tokenizer.codebook_sizes, config.dataset.num_tracks) == (32, (8, 8, 8, 8), 100)
    assert config.dataset.num_playlists == 200 and child.parent == str(tmp_path / "parent.yaml")
    grandchild = load_study(_write(tmp_path, "grandchild", "extends: child\nname: grandchild\nsmoke: {dataset.num_tracks: !delete}\n"))
    assert grandchild.axes[0].values == ("two", "three", "four") and grandchild.seeds == (0,) and grandchild.smoke == {}
    assert grandchild.resolve({"depth": "two", "seed": 0}).tokenizer.latent_dim == 32


@pytest.mark.parametrize("text, expected", [
    ("extends: musicrec-rati\nname: c\n", r"c.yaml: extends: no study named 'musicrec-rati'; did you mean 'musicrec-ratio'\?"),
    ("extends: [parent]\nname: c\n", r"c.yaml: extends: expected a study name, got \['parent'\]"),
    ("extends: parent\nname: c\nbase: {tokenizer: {latent_dims: !delete}}\n",
     r"c.yaml: base.tokenizer.latent_dims: !delete names a key the parent does not have; the parent's keys here are: kind, codebook_sizes, latent_dim"),
    ("name: c\nbase: {tokenizer: !delete}\n", r"c.yaml: base.tokenizer: !delete has no parent value to delete"),
    ("extends: parent\nname: c\nseeds: [0, !delete]\n", r"c.yaml: seeds.1: !delete has no parent value to delete"),
    ("extends: parent\ndescription: no name\n", r"c.yaml: missing key 'name'"),
    ("extends: parent\nname: c\nseeds: [0\n", r"c.yaml: not valid YAML: expected ',' or '\]', but got '<stream end>' at line 4, column 1$"),
])
def test_a_bad_extends_fails_in_one_line_naming_the_file_and_key(tmp_path, text, expected):
    _write(tmp_path, "parent", PARENT)
    with pytest.raises(ConfigError, match=expected) as caught:
        load_study(_write(tmp_path, "c", text))
    assert "\n" not in str(caught.value)


def test_a_cycle_fails_naming_the_chain(tmp_path):
    _write(tmp_path, "a", "extends: b\nname: a\n")
    _write(tmp_path, "b", "extends: c\nname: b\n")
    _write(tmp_path, "c", "extends: a\nname: c\n")
    with pytest.raises(ConfigError, match=r"^.*/c.yaml: extends: 'a' makes a cycle: a.yaml -> b.yaml -> c.yaml -> a.yaml$"):
        load_study(tmp_path / "a.yaml")
    _write(tmp_path, "self", "extends: self\nname: self\n")
    with pytest.raises(ConfigError, match=r"self.yaml: extends: 'self' makes a cycle: self.yaml -> self.yaml"):
        load_study(tmp_path / "self.yaml")


def test_merge_and_changes_by_hand():
    parent = {"a": {"b": 1, "c": [1, 2]}, "d": 3, "e": {"f": 1}}
    child = {"a": {"c": [3]}, "d": DELETE, "g": {"h": 2}, "e": {"f": 1}}
    merged = merge(parent, child, "x.yaml")
    assert merged == {"a": {"b": 1, "c": [3]}, "e": {"f": 1}, "g": {"h": 2}}
    assert list(merged) == ["a", "e", "g"]  # the parent's order, new keys after
    assert changes(parent, merged) == [("~", "a.c", [1, 2], [3]), ("-", "d", 3, None), ("+", "g", None, {"h": 2})]
    assert yaml.load("k: !delete", Loader=StudyLoader) == {"k": DELETE}


def test_parse_study_resolves_extends_beside_its_source_and_in_search_spaces(tmp_path):
    _write(tmp_path, "parent", PARENT)
    study = parse_study({"extends": "parent", "name": "memory"}, str(tmp_path / "memory.yaml"))
    assert [axis.name for axis in study.axes] == ["tokenizer.latent_dim", "depth"]
    shipped = parse_study({"extends": "musicrec-ratio", "name": "mine", "seeds": [4]}, str(tmp_path / "mine.yaml"))
    assert shipped.seeds == (4,) and shipped.parent == str(STUDY_DIRS[0] / "musicrec-ratio.yaml")


def _leaves(data, prefix=""):
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_shipped_near_copies_extend_and_state_only_what_differs():
    """The musicrec-* and *-mpd studies extend another; no line of a child repeats what its parent gives."""
    own = {path.stem: yaml.load(path.read_text(), Loader=StudyLoader) for path in SHIPPED.glob("*.yaml")}
    children = {name for name, data in own.items() if "extends" in data}
    expected = {n for n in own if (n.startswith("musicrec-") and n != "musicrec-ratio") or n.endswith("-mpd")}
    assert expected | {"3mtoken-modality-ablation"} <= children
    for name in children:
        changed = {path for _, path, _, _ in changes_from_parent(str(SHIPPED / f"{name}.yaml"))}
        for path, value in _leaves({k: v for k, v in own[name].items() if k not in ("extends", "name", "description")}):
            assert any(path == c or path.startswith(f"{c}.") for c in changed), f"{name}: {path} repeats the parent's value"


def test_show_tells_what_a_study_is():
    result = CliRunner().invoke(app, ["show", "musicrec-ablation"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "variant: grid of 8 labels" in text and "    w/o audio ids: features.modalities=[text, tags]" in text
    assert "grid points (8):\n  variant=full\n  variant=w/o text ids\n" in text
    assert "trials: 24 (seeds [0, 1, 2]); with --smoke: 8 (seeds [0])" in text
    assert "extends musicrec-ratio (" in text and "what this study changes (8):" in text
    assert "  + base.tokenizer.shared_levels: 2\n" in text and "  - axes.ratio: deleted\n" in text
    assert "  ~ report.rows: [ratio] -> [variant]\n" in text
    assert "resolved config of the first trial (variant=full seed=0):" in text and "    recommender.tasks = ['mmg', 'umg', 'mma']" in text
    assert text.index("grid points") < text.index("trials:") < text.index("extends") < text.index("resolved config")
    search = CliRunner().invoke(app, ["show", "musicrec-search", "--smoke"]).output
    assert "search: optuna (TPE seeded 0), 24 samples, scheduler asha (grace period 2)" in search
    assert "search space:\n  tokenizer.codebook_size: choice [64, 128, 256, 512]\n" in search
    assert "  tokenizer.alpha: loguniform [0.001, 0.1]" in search and "grid points" not in search
    assert "    recommender.epochs = 2" in search  # --smoke resolves the smoke config
    assert "extends: no other study" in CliRunner().invoke(app, ["show", "musicrec-ratio"]).output
    typo = CliRunner().invoke(app, ["show", "musicrec-rati"])
    assert typo.exit_code == 2 and "did you mean 'musicrec-ratio'?" in " ".join(typo.output.split())


def test_a_self_contained_study_loads_without_its_parents(tmp_path):
    """What `raysid submit` ships: the study with its chain merged in, the same study on a cluster."""
    path = tmp_path / "musicrec-search.yaml"
    path.write_text(self_contained("musicrec-search"))
    alone, shipped = load_study(path), load_study("musicrec-search")
    assert "extends" not in path.read_text() and alone.parent == "" and shipped.parent
    assert dataclasses.replace(alone, source="", parent="") == dataclasses.replace(shipped, source="", parent="")
