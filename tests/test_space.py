"""Study YAML loading: the shipped studies load, and bad input fails naming the key and the choices."""

from pathlib import Path

import pytest
import yaml

from raysid.config import ConfigError
from raysid.sweep.space import find_study, list_studies, load_study, parse_study
from raysid.tokenizers.musicrec import MusicRecConfig

STUDIES = sorted(Path(__file__).resolve().parents[1].joinpath("search_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_every_shipped_study_loads_and_resolves_every_point(path):
    study = load_study(path)
    assert study.name == path.stem
    for smoke in (False, True):
        points = study.grid_points(smoke)
        assert points
        for point in points:
            config = study.resolve(point, smoke)
            assert config.seed == point["seed"]


def test_musicrec_ratio_is_the_papers_figure_4b():
    study = load_study("musicrec-ratio")
    ratio = study.axes[0]
    assert ratio.values == ("1:3", "2:2", "3:1")
    for label in ratio.values:
        config = study.resolve({"ratio": label, "seed": 0})
        shared, specific = (int(x) for x in label.split(":"))
        assert (config.tokenizer.shared_levels, config.tokenizer.specific_levels) == (shared, specific)
        assert config.tokenizer.shared_levels + config.tokenizer.specific_levels == 4
        assert config.tokenizer.codebook_size == 64 and config.recommender.beam_size == 20  # 64: see the YAML
    assert MusicRecConfig().codebook_size == 256 and MusicRecConfig().commitment_weight == 0.25  # the paper's
    assert len(study.grid_points()) == 3 * len(study.seeds) and len(study.seeds) >= 3
    assert len(study.grid_points(smoke=True)) == 3


def base_study(**changes):
    data = yaml.safe_load(find_study("musicrec-ratio").read_text())
    data.update(changes)
    return data


def test_unknown_top_level_key_names_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'seed'; valid keys are: name, description, base, axes, seeds"):
        parse_study(base_study(seed=[1]), "study.yaml")


def test_unknown_config_key_names_the_section_and_valid_keys():
    data = base_study()
    data["base"]["tokenizer"]["codebook_sise"] = 3
    with pytest.raises(ConfigError, match=r"config.tokenizer: unknown key 'codebook_sise'; valid keys are: .*codebook_size"):
        parse_study(data, "study.yaml")


def test_bad_value_in_an_axis_names_the_key():
    data = base_study()
    data["axes"]["ratio"]["grid"]["1:3"]["tokenizer.codebook_size"] = 0
    with pytest.raises(ConfigError, match=r"tokenizer.codebook_size"):
        parse_study(data, "study.yaml")


def test_ratio_levels_must_add_up_to_the_total():
    data = base_study()
    data["axes"]["ratio"]["grid"]["3:1"]["tokenizer.specific_levels"] = 2
    with pytest.raises(ConfigError, match=r"tokenizer.shared_levels: shared_levels \+ specific_levels = 3 \+ 2 does not add up to total_levels = 4"):
        parse_study(data, "study.yaml")


def test_wrong_type_names_the_key():
    data = base_study()
    data["base"]["recommender"]["beam_size"] = "twenty"
    with pytest.raises(ConfigError, match=r"config.recommender.beam_size: expected an integer, got 'twenty'"):
        parse_study(data, "study.yaml")


def test_bad_mode_algorithm_and_axis_kind_list_the_choices():
    with pytest.raises(ConfigError, match=r"mode: got 'maximum'; valid choices are: 'max', 'min'"):
        parse_study(base_study(mode="maximum"), "s.yaml")
    with pytest.raises(ConfigError, match=r"search.algorithm: got 'random'; valid choices are: 'grid', 'optuna'"):
        parse_study(base_study(search={"algorithm": "random"}), "s.yaml")
    with pytest.raises(ConfigError, match=r"unknown axis kind 'normal'; valid kinds are: grid, choice"):
        parse_study(base_study(axes={"tokenizer.alpha": {"normal": [0, 1]}}), "s.yaml")


def test_range_axis_needs_optuna_and_metric_must_exist():
    with pytest.raises(ConfigError, match=r"needs search.algorithm: optuna"):
        parse_study(base_study(axes={"tokenizer.alpha": {"loguniform": [1e-3, 1e-1]}}, report={"rows": ["tokenizer.alpha"]}), "s.yaml")
    with pytest.raises(ConfigError, match=r"metric: 'valid/ndcg@100' is not a metric"):
        parse_study(base_study(metric="valid/ndcg@100"), "s.yaml")



def test_the_default_metric_is_one_the_trials_report():
    tokenizer_only = {"name": "t", "base": {"recommender": {"kind": "none"}}, "axes": {"tokenizer.codebook_size": {"grid": [8]}}}
    assert parse_study(tokenizer_only, "t.yaml").metric == "retrieval/hit@10"
    with_recommender = {**tokenizer_only, "base": {"recommender": {"kind": "t5"}}}
    assert parse_study(with_recommender, "t.yaml").metric == "valid/ndcg@10"
    with pytest.raises(ConfigError, match=r"'valid/ndcg@10' is not a metric these trials report; examples: retrieval/hit@10, sid/conflict_rate$"):
        parse_study({**tokenizer_only, "metric": "valid/ndcg@10"}, "t.yaml")

def test_report_rows_must_be_axes_and_unknown_tokenizer_lists_names():
    with pytest.raises(ConfigError, match=r"report.rows: 'seed' is not an axis; axes are: ratio"):
        parse_study(base_study(report={"rows": ["seed"]}), "s.yaml")
    data = base_study()
    data["base"]["tokenizer"]["kind"] = "rq-vae"
    with pytest.raises(ConfigError, match=r"'rq-vae'.*musicrec"):
        parse_study(data, "s.yaml")


def test_unknown_study_lists_known_ones_and_listing_works():
    with pytest.raises(ConfigError, match=r"no study named 'nope'; known studies: .*musicrec-ratio"):
        load_study("nope")
    assert "musicrec-ratio" in list_studies()


def test_optuna_space_accepts_ranges():
    study = parse_study(base_study(axes={"tokenizer.alpha": {"loguniform": [1e-3, 1e-1]}, "tokenizer.codebook_size": {"int": [16, 64]}},
                                   search={"algorithm": "optuna", "num_samples": 4}, report={"rows": ["tokenizer.alpha"]}), "s.yaml")
    config = study.resolve({"tokenizer.alpha": 0.05, "tokenizer.codebook_size": 40, "seed": 0})
    assert config.tokenizer.alpha == 0.05 and config.tokenizer.codebook_size == 40


def test_smoke_overrides_do_not_leak_into_a_labelled_section():
    """A smoke key inside a section an axis label replaces shrinks the smoke run only."""
    study = load_study(find_study("fusid-recommendation"))
    point = {"variant": "SASRec", "seed": 0}
    assert study.resolve(point, smoke=True).recommender.epochs == 1
    assert study.resolve(point, smoke=False).recommender.epochs == 20


@pytest.mark.parametrize("changes, expected", [
    ({"smoke": [1, 2]}, r"s.yaml: smoke: expected a mapping, got list \[1, 2\]"),
    ({"axes": {"tokenizer.alpha": {"uniform": ["a", "b"]}}, "search": {"algorithm": "optuna"}},
     r"s.yaml: axes.tokenizer.alpha: uniform expects two numbers \[low, high\], got \['a', 'b'\]"),
    ({"search": {"max_failures": -5}}, r"search.max_failures: expected retries >= 0, got -5"),
    ({"name": "../../../x"}, r"s.yaml: name: '../../../x' is not a folder name"),
    ({"report": {"rows": "ratio"}}, r"s.yaml: report.rows: expected a list, got 'ratio'"),
])
def test_hostile_study_values_fail_naming_file_key_and_value(changes, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_study(base_study(**changes), "s.yaml")


def test_a_point_outside_a_labelled_axis_names_its_values():
    study = load_study("musicrec-ratio")
    with pytest.raises(ConfigError, match=r"axis ratio: no value '5:5'; its values are: '1:3', '2:2', '3:1'"):
        study.resolve({"ratio": "5:5", "seed": 0})


def test_a_misspelt_study_or_axis_value_gets_a_suggestion():
    with pytest.raises(ConfigError, match=r"no study named 'musicrec-ratoi'; did you mean 'musicrec-ratio'\? known studies:"):
        find_study("musicrec-ratoi")
    with pytest.raises(ConfigError, match=r"axis variant: no value 'w/o MMA '; did you mean 'w/o MMA'\?"):
        load_study("musicrec-ablation").resolve({"variant": "w/o MMA ", "seed": 0})


def test_umg_and_mma_on_one_modality_fail_at_load_naming_the_variant_and_the_fix(tmp_path):
    """MusicRec's UMG and MMA need identifiers of two modalities: a variant that leaves one fails when the study
    loads, not after its tokenizer trained (as musicrec-ablation on a two-modality import once did)."""
    data = yaml.safe_load(find_study("musicrec-ratio").read_text())
    data["base"]["tokenizer"] |= {"shared_levels": 2, "specific_levels": 2}
    data["base"]["recommender"]["tasks"] = ["mmg", "umg", "mma"]
    data["axes"] = {"variant": {"grid": {"full": {}, "text only": {"features.modalities": ["text"]}}}}
    data["report"]["rows"] = ["variant"]
    with pytest.raises(ConfigError, match=r"axes.variant=text only: recommender.tasks \['mma', 'umg'\] need identifiers "
                                          r"of two or more modalities; this trial's features hold only text: .*\[mmg\]"):
        parse_study(data, str(tmp_path / "one-modality.yaml"))
    data["axes"]["variant"]["grid"]["text only"]["recommender.tasks"] = ["mmg"]
    assert parse_study(data, str(tmp_path / "one-modality.yaml")).axes[0].values == ("full", "text only")
