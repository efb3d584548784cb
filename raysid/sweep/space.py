"""Studies: a YAML file = base config + search space + seeds + metric/mode + report layout.

```yaml
name: musicrec-ratio
base: {tokenizer: {kind: musicrec, codebook_size: 256}}       # overrides of the TrialConfig defaults
axes:
  ratio:                                                      # a labelled axis: each label sets several keys
    grid: {"1:3": {tokenizer.shared_levels: 1, tokenizer.specific_levels: 3}, ...}
  tokenizer.alpha: {loguniform: [1.0e-3, 1.0e-1]}             # a config path: values set that key
seeds: [0, 1, 2]
metric: valid/ndcg@10
mode: max
search: {algorithm: grid, scheduler: none}
report: {rows: [ratio], metrics: [test/ndcg@10], best: test/ndcg@10}
smoke: {dataset.num_tracks: 300}                              # overrides applied by --smoke
```
A study may say ``extends: OTHER`` and state only what differs (raysid.sweep.extends). Axes may name
modalities relative to the data (``{modality}`` labels, ``all`` / ``all-but-NAME`` lists; see MODALITY
below), so that ``retarget_study`` (``--dataset``) moves a study onto an import with other modalities.
Loading fails with a message that names the file, the bad key and the valid choices.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from raysid.config import ConfigError, build, override, require, stable_hash
from raysid.data.catalog import MODALITIES as CATALOG_MODALITIES
from raysid.data.importers.source import ImportedConfig, parse_dataset_config
from raysid.data.importers.store import dataset_folder, read_info
from raysid.pipeline.metrics import is_reported, trial_metric_names
from raysid.trial_config import TrialConfig, parse_trial_config
from raysid.reporting.summary import ReportLayout
from raysid.sweep.extends import NOT_INHERITED, changes, read_yaml, resolve_extends

AXIS_KINDS = ("grid", "choice", "uniform", "loguniform", "int")
STUDY_DIRS = (Path.cwd() / "search_spaces", Path(__file__).resolve().parents[2] / "search_spaces")


@dataclass(frozen=True)
class Axis:
    """One dimension of the search space."""

    name: str  # a dotted config path, or a label whose grid values are mappings of config paths
    kind: Literal["grid", "choice", "uniform", "loguniform", "int"]
    values: tuple[Any, ...]  # grid/choice: the options (labels for labelled axes); ranges: (low, high)
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # label -> {path: value}

    def overrides(self, value: Any) -> dict[str, Any]:
        """The config updates that setting this axis to ``value`` implies."""
        if self.settings and value not in self.settings:
            labels = ", ".join(map(repr, self.settings))
            close = difflib.get_close_matches(str(value), list(self.settings), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"axis {self.name}: no value {value!r}; {hint}its values are: {labels}")
        return dict(self.settings[value]) if self.settings else {self.name: value}


@dataclass(frozen=True)
class SearchConfig:
    algorithm: Literal["grid", "optuna"] = "grid"  # grid: every combination; optuna: TPE sampling
    num_samples: int = 1  # optuna: configurations to sample (grid: repeats of the whole grid)
    scheduler: Literal["none", "asha"] = "none"  # asha stops weak trials early on the study metric
    grace_period: int = 2  # asha: epochs before a trial may be stopped
    max_concurrent: int = 0  # trials at once; 0 = one per CPU of the cluster
    max_failures: int = 1  # retries of a failed trial before it is reported as failed

    def __post_init__(self) -> None:
        require(self.num_samples >= 1, "search.num_samples", f"expected >= 1, got {self.num_samples}")
        require(self.max_concurrent >= 0, "search.max_concurrent", f"expected >= 0, got {self.max_concurrent}")
        require(self.max_failures >= 0, "search.max_failures", f"expected retries >= 0, got {self.max_failures}")
        require(self.grace_period >= 1, "search.grace_period", f"expected >= 1, got {self.grace_period}")


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    base: Mapping[str, Any]
    axes: tuple[Axis, ...]
    seeds: tuple[int, ...]
    metric: str
    mode: Literal["max", "min"]
    search: SearchConfig
    report: ReportLayout
    smoke: Mapping[str, Any]
    smoke_seeds: tuple[int, ...] = ()
    source: str = "<memory>"
    parent: str = ""  # the file this study extends ("" when it extends none)
    axes_spec: Mapping[str, Any] = field(default_factory=dict)  # the axes as written, before modality expansion

    def seeds_for(self, smoke: bool) -> tuple[int, ...]:
        """The seeds of a run: the smoke section may name fewer."""
        return self.smoke_seeds if smoke and self.smoke_seeds else self.seeds

    def resolve(self, point: Mapping[str, Any], smoke: bool = False) -> TrialConfig:
        """The TrialConfig of one point ({axis name: value, "seed": int})."""
        updates: dict[str, Any] = {}
        for axis in self.axes:  # in order: a later axis may refine a section an earlier one set
            updates.update(axis.overrides(point[axis.name]))
        updates.update(self.smoke if smoke else {})  # last, so it shrinks whatever the axes chose
        updates["seed"] = point["seed"]
        return parse_trial_config(override(self.base, updates), f"{self.source}: config")

    def grid_points(self, smoke: bool = False) -> list[dict[str, Any]]:
        """Every combination of grid axes and seeds (grid studies only)."""
        names = [axis.name for axis in self.axes]
        options = [axis.values for axis in self.axes]
        return [dict(zip([*names, "seed"], combo)) for combo in itertools.product(*options, self.seeds_for(smoke))]

    def trial_count(self, smoke: bool = False) -> int:
        """Trials a sweep runs: grid points x seeds (x num_samples), or Optuna's num_samples."""
        if self.search.algorithm == "grid":
            return len(self.grid_points(smoke)) * self.search.num_samples
        return self.search.num_samples

    def first_point(self) -> dict[str, Any]:
        """The point of every axis's first value (a range's low end) and the first seed."""
        return {axis.name: axis.values[0] for axis in self.axes} | {"seed": self.seeds[0]}


def count_trials(study: Study, smoke: bool = False) -> int:
    """The trials a sweep of ``study`` runs (``Study.trial_count``)."""
    return study.trial_count(smoke)


STUDY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # a study names its results folder: no path in it
STUDY_KEYS = ("name", "description", "base", "axes", "seeds", "metric", "mode", "search", "report", "smoke", "extends")


def find_study(name_or_path: str) -> Path:
    """A study by name (``search_spaces/NAME.yaml``) or by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    for folder in STUDY_DIRS:
        candidate = folder / f"{name_or_path}.yaml"
        if candidate.exists():
            return candidate
    known = sorted({p.stem for folder in STUDY_DIRS if folder.exists() for p in folder.glob("*.yaml")})
    close = difflib.get_close_matches(name_or_path, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"no study named {name_or_path!r}; {hint}known studies: {', '.join(known) or 'none'}")


def list_studies() -> dict[str, str]:
    """Study name -> description, for every YAML in search_spaces/."""
    found = {}
    for folder in STUDY_DIRS:
        for path in sorted(folder.glob("*.yaml")) if folder.exists() else ():
            if path.stem in found:  # the working directory's search_spaces/ comes first
                continue
            try:
                found.setdefault(path.stem, (load_study(path).description.strip().splitlines() or [""])[0])
            except ConfigError as error:
                found.setdefault(path.stem, f"INVALID: {error}")
    return found


def load_study(name_or_path: str | Path) -> Study:
    """Load and validate a study YAML; every grid point must build a valid TrialConfig."""
    path = find_study(str(name_or_path))
    return parse_study(read_yaml(path), str(path))


def self_contained(name_or_path: str | Path) -> str:
    """The study's YAML with its ``extends`` chain merged in: a file that loads without its parents (what a
    job submitted to a cluster runs)."""
    path = find_study(str(name_or_path))
    data, _ = resolve_extends(read_yaml(path), str(path), find_study)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def changes_from_parent(source: str) -> list[tuple[str, str, Any, Any]]:
    """What study file ``source`` changes relative to the study it extends, both merged over their chains:
    (sign, key path, parent's value, this study's value), sign "+" added, "-" deleted, "~" changed."""
    data, parent = resolve_extends(read_yaml(Path(source)), source, find_study)
    if not parent:
        return []
    inherited, _ = resolve_extends(read_yaml(Path(parent)), parent, find_study)
    return [change for change in changes(inherited, data) if change[1] not in NOT_INHERITED]


def parse_study(data: Mapping[str, Any], source: str) -> Study:
    """A study from its mapping (merged over the study it ``extends``, see raysid.sweep.extends)."""
    data, parent = resolve_extends(data, source, find_study)
    unknown = sorted(set(data) - set(STUDY_KEYS))
    require(not unknown, source, f"unknown key(s) {', '.join(map(repr, unknown))}; valid keys are: {', '.join(STUDY_KEYS)}")
    require("name" in data, source, "missing key 'name'")
    name = str(data["name"])
    require(STUDY_NAME.fullmatch(name) is not None, f"{source}: name",
            f"{name!r} is not a folder name: letters, digits, '.', '_' and '-', not starting with '.' or '-'")
    for key in ("base", "axes", "smoke", "search", "report"):
        require(isinstance(data.get(key) or {}, Mapping), f"{source}: {key}",
                f"expected a mapping, got {type(data.get(key)).__name__} {data.get(key)!r}")
    search = build(SearchConfig, data.get("search"), f"{source}: search")
    axes_spec = dict(data.get("axes") or {})
    axes = _parse_axes(axes_spec, data.get("base") or {}, source)
    seeds = _parse_seeds(data.get("seeds", [0]), f"{source}: seeds")
    smoke = dict(data.get("smoke") or {})
    smoke_seeds = _parse_seeds(smoke.pop("seeds"), f"{source}: smoke.seeds") if "seeds" in smoke else ()
    mode = data.get("mode", "max")
    require(mode in ("max", "min"), f"{source}: mode", f"got {mode!r}; valid choices are: 'max', 'min'")
    study = Study(
        name=name, description=str(data.get("description", "")), base=dict(data.get("base") or {}),
        axes=axes, seeds=seeds, metric=str(data.get("metric", "")), mode=mode, search=search,
        report=_parse_report(data.get("report") or {}, axes, mode, f"{source}: report"),
        smoke=smoke, smoke_seeds=smoke_seeds, source=source, parent=parent, axes_spec=axes_spec,
    )
    study = study if study.metric else dataclasses.replace(study, metric=_default_metric(study))
    if not study.report.select:  # the best trials are chosen on the metric the search optimised
        study = dataclasses.replace(study, report=dataclasses.replace(study.report, select=study.metric, select_mode=study.mode))
    _check_points(study)
    return study


def _default_metric(study: Study) -> str:
    """valid/ndcg@10 when the study trains a recommender; retrieval/hit@10 for a tokenizer-only study."""
    return "retrieval/hit@10" if study.resolve(study.first_point()).recommender_kind == "none" else "valid/ndcg@10"


def _parse_axes(spec: Mapping[str, Any], base: Mapping[str, Any], source: str) -> tuple[Axis, ...]:
    """The axes, their modality names spelled out for the base's dataset (read only when an axis uses them)."""
    names = functools.cache(lambda: feature_modalities(base, source))
    return tuple(_parse_axis(name, axis, f"{source}: axes.{name}", names) for name, axis in spec.items())


def _parse_axis(name: str, spec: Any, where: str, modalities: Callable[[], tuple[str, ...]]) -> Axis:
    require(isinstance(spec, Mapping) and len(spec) == 1, where, f"expected one of {', '.join(AXIS_KINDS)} with its values, got {spec!r}")
    kind, values = next(iter(spec.items()))
    require(kind in AXIS_KINDS, where, f"unknown axis kind {kind!r}; valid kinds are: {', '.join(AXIS_KINDS)}")
    if kind in ("grid", "choice"):
        if isinstance(values, Mapping):
            require(len(values) > 0, where, "a labelled grid needs at least one label")
            settings = {str(label): dict(v or {}) for label, v in values.items()}
            settings = _per_modality(settings, modalities, where)
            return Axis(name, kind, tuple(settings), settings)
        require(isinstance(values, list) and len(values) > 0, where, f"expected a non-empty list of values, got {values!r}")
        return Axis(name, kind, tuple(values))
    require(isinstance(values, list) and len(values) == 2, where, f"{kind} expects [low, high], got {values!r}")
    require(all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values), where,
            f"{kind} expects two numbers [low, high], got {values!r}")
    require(kind != "int" or all(float(v).is_integer() for v in values), where, f"int expects two integers, got {values!r}")
    low, high = (float(v) if kind != "int" else int(v) for v in values)
    require(low < high and (kind != "loguniform" or low > 0), where, f"expected 0 < low < high for {kind}, got {values!r}")
    return Axis(name, kind, (low, high))


# --- modality names a study writes relative to its data ---------------------------------------------
# A study written for the catalog's text, audio and tags runs on data with other modalities when its axes
# name them relatively: a label holding MODALITY is repeated once per modality the trials' features hold
# (MODALITY replaced in the label and in its values), and in a modality list ALL stands for every one of
# them, ALL_BUT + NAME for every one but NAME, in the dataset's order.
MODALITY = "{modality}"
ALL, ALL_BUT = "all", "all-but-"
MODALITY_LISTS = ("features.modalities", "tokenizer.modalities")  # config paths whose lists may use ALL, ALL_BUT


def _per_modality(settings: dict[str, dict[str, Any]], modalities: Callable[[], tuple[str, ...]],
                  where: str) -> dict[str, dict[str, Any]]:
    """A labelled axis's settings with MODALITY labels repeated per modality and modality lists spelled out."""
    expanded: dict[str, dict[str, Any]] = {}
    for label, values in settings.items():
        for name in modalities() if MODALITY in label else (None,):
            concrete = label.replace(MODALITY, name) if name else label
            require(concrete not in expanded, where, f"label {concrete!r} appears twice once {MODALITY} is spelled out")
            filled = _filled(values, name) if name else values
            expanded[concrete] = _spelled_out(filled, modalities, f"{where}.{concrete}")
    return expanded


def _filled(value: Any, name: str) -> Any:
    """``value`` with MODALITY replaced by ``name`` in every string."""
    if isinstance(value, str):
        return value.replace(MODALITY, name)
    if isinstance(value, Mapping):
        return {key: _filled(item, name) for key, item in value.items()}
    return [_filled(item, name) for item in value] if isinstance(value, list) else value


def _spelled_out(value: Any, modalities: Callable[[], tuple[str, ...]], where: str, path: str = "") -> Any:
    """``value`` (a label's settings) with ALL and ALL_BUT entries of its modality lists replaced."""
    if isinstance(value, Mapping):
        return {key: _spelled_out(item, modalities, where, f"{path}.{key}" if path else str(key))
                for key, item in value.items()}
    if not (isinstance(value, list) and path in MODALITY_LISTS):
        return value
    names: list[Any] = []
    for entry in value:
        left_out = entry[len(ALL_BUT):] if isinstance(entry, str) and entry.startswith(ALL_BUT) else None
        if left_out is not None and left_out not in modalities():
            raise ConfigError(f"{where}: {path}: {entry!r}: {left_out!r} is not a modality of the trials' features "
                              f"({', '.join(modalities())})")
        names += list(modalities()) if entry == ALL else [m for m in modalities() if m != left_out] if left_out else [entry]
    if value and not names:
        raise ConfigError(f"{where}: {path}: {value} leaves no modality: the trials' features hold only "
                          f"{', '.join(modalities())}")
    return names


def feature_modalities(base: Mapping[str, Any], source: str) -> tuple[str, ...]:
    """The modalities the trials' features hold, which MODALITY, ALL and ALL_BUT range over: the base's
    ``features.modalities`` when it lists them, else its dataset's."""
    features = base.get("features")
    chosen = features.get("modalities") if isinstance(features, Mapping) else None
    if chosen:
        return tuple(chosen)
    dataset = parse_dataset_config(base.get("dataset"), f"{source}: config.dataset")
    if isinstance(dataset, ImportedConfig) and not dataset.modalities:
        dataset.folder()  # an import not made yet fails here, naming the datasets that exist
    return dataset_modalities(dataset)


def dataset_modalities(dataset: Any) -> tuple[str, ...]:
    """The modalities a trial's dataset gives its features: the catalog's text, audio and tags; an import's
    ``dataset.modalities``, else its kind's defaults that the import supplies; () while it is not imported."""
    if not isinstance(dataset, ImportedConfig):
        return CATALOG_MODALITIES
    if dataset.modalities:
        return dataset.modalities
    try:
        meta = read_info(dataset.folder())["meta"]
    except ConfigError:  # not imported (yet): its trials fail at the dataset stage, naming it
        return ()
    from raysid.features.modalities import default_modalities

    return default_modalities(meta)


def _parse_seeds(seeds: Any, where: str) -> tuple[int, ...]:
    require(isinstance(seeds, list) and len(seeds) > 0, where, f"expected a non-empty list of integers, got {seeds!r}")
    require(all(isinstance(s, int) and not isinstance(s, bool) for s in seeds), where, f"expected integers, got {seeds!r}")
    require(len(set(seeds)) == len(seeds), where, f"seeds repeat: {seeds!r}")
    return tuple(seeds)


def _parse_report(data: Mapping[str, Any], axes: tuple[Axis, ...], mode: str, where: str) -> ReportLayout:
    axis_names = [axis.name for axis in axes]
    for key in ("rows", "metrics", "importance"):
        require(isinstance(data.get(key, []), list), f"{where}.{key}", f"expected a list, got {data.get(key)!r}")
    rows = tuple(data.get("rows", axis_names[:1]))
    for row in rows:
        require(row in axis_names, f"{where}.rows", f"{row!r} is not an axis; axes are: {', '.join(axis_names) or 'none'}")
    metrics = tuple(data.get("metrics", ("test/hr@5", "test/hr@10", "test/ndcg@5", "test/ndcg@10")))
    values = {"rows": rows, "metrics": metrics, "best": data.get("best", metrics[0]), "mode": data.get("mode", mode)}
    values.update({k: v for k, v in data.items() if k not in values})
    return build(ReportLayout, values, where)


def _check_points(study: Study) -> None:
    """Build the TrialConfig of every grid label (and range endpoint) so bad keys fail at load time."""
    if study.search.algorithm == "grid":
        for axis in study.axes:
            require(axis.kind == "grid", f"{study.source}: axes.{axis.name}",
                    f"a {axis.kind!r} axis needs search.algorithm: optuna (grid search takes only 'grid' axes)")
    first = study.first_point()
    for axis in study.axes:
        for value in axis.values:
            point = dict(first, **{axis.name: value})
            if axis.kind == "int":
                point[axis.name] = int(value)
            label = f"axes.{axis.name}={value}"
            for config, where in ((study.resolve(point), label), (study.resolve(point, smoke=True), f"{label} (smoke)")):
                _check_modality_names(config, f"{study.source}: {where}")
                _check_imported_beam(config, f"{study.source}: {where}")
                _check_task_modalities(config, f"{study.source}: {where}")
    config = study.resolve(first)
    _check_feedback(study, config)
    known = known_metrics(config)
    examples = [m for m in ("valid/ndcg@10", "test/hr@5", "retrieval/hit@10", "sid/conflict_rate") if m in known]
    require(is_reported(study.metric, known), f"{study.source}: metric",
            f"{study.metric!r} is not a metric these trials report; examples: {', '.join(examples)}")
    epoch_metric = study.metric.startswith("valid/") and config.evaluation.epoch_users > 0
    require(study.search.scheduler != "asha" or epoch_metric, f"{study.source}: search.scheduler",
            f"asha needs {study.metric} every epoch; set base.evaluation.epoch_users (validation users ranked after "
            "each recommender epoch, e.g. 200) and a valid/ metric")


def _check_modality_names(config: TrialConfig, where: str) -> None:
    """The modalities a trial names are ones its data gives (an import not made yet is not checked)."""
    given = dataset_modalities(config.dataset)
    chosen = config.features.modalities
    tokenizer = getattr(config.tokenizer, "modalities", ())  # the tokenizers that pick modalities have this key
    for key, names, held in (("features.modalities", chosen, given), ("tokenizer.modalities", tokenizer, chosen or given)):
        missing = [name for name in names if name not in held]
        if given and missing:
            raise ConfigError(f"{where}: {key} names {', '.join(map(repr, missing))}, which {_data_name(config.dataset)} "
                              f"does not give the features (they hold: {', '.join(held)})")


def _check_task_modalities(config: TrialConfig, where: str) -> None:
    """MusicRec's UMG and MMA tasks generate one modality's identifier from another's, so they need MusicRec
    identifiers of two or more modalities: a trial with fewer fails here, before any stage, not after its
    tokenizer has trained (an import not made yet is not checked)."""
    tasks = sorted(set(getattr(config.recommender, "tasks", ())) & {"umg", "mma"})
    if not tasks:
        return
    if config.tokenizer_kind != "musicrec":
        raise ConfigError(f"{where}: recommender.tasks {tasks} need MusicRec identifiers (tokenizer.kind: musicrec), "
                          f"not {config.tokenizer_kind!r}; use tasks: [mmg]")
    modalities = config.features.modalities or dataset_modalities(config.dataset)
    if modalities and len(modalities) < 2:
        raise ConfigError(f"{where}: recommender.tasks {tasks} need identifiers of two or more modalities; this "
                          f"trial's features hold only {', '.join(modalities)}: keep two modalities "
                          "(features.modalities) or drop those tasks (recommender.tasks: [mmg])")


def _check_imported_beam(config: TrialConfig, where: str) -> None:
    """A beam wider than the items an import holds fails here, before any stage (the catalog's size is checked
    when the trial config is parsed; a dataset view that drops items is checked by the recommender)."""
    beam = getattr(config.recommender, "beam_size", None)
    if not isinstance(config.dataset, ImportedConfig) or beam is None or config.recommender_kind == "none" \
            or getattr(config.recommender, "ranking", "beam") != "beam":
        return
    try:
        items = read_info(config.dataset.folder())["meta"].get("counts", {}).get("items")
    except ConfigError:  # not imported (yet): its trials fail at the dataset stage, naming it
        return
    if items is not None and beam > items:
        raise ConfigError(f"{where}: recommender.beam_size = {beam} is larger than {_data_name(config.dataset)} "
                          f"({items} items); use beam_size <= {items}")


def _check_feedback(study: Study, config: TrialConfig) -> None:
    """A study measured on played/skipped feedback (the stratified AUC) needs data that has it."""
    if "auc" not in study.metric.split("/")[-1] or _has_feedback(config.dataset):
        return
    raise ConfigError(f"{study.source}: metric: {study.metric} is the stratified AUC over played/skipped feedback, which "
                      f"{_data_name(config.dataset)} does not have; run it on data with feedback (the catalog with "
                      "dataset.skips.enabled: true, or a spotify-skip import)")


def _has_feedback(dataset: Any) -> bool:
    if not isinstance(dataset, ImportedConfig):
        return dataset.skips.enabled
    try:
        return (dataset.folder() / "feedback.npz").is_file()
    except ConfigError:  # not imported (yet): its trials fail at the dataset stage, naming it
        return True


def _data_name(dataset: Any) -> str:
    return f"dataset {dataset.name or dataset.path!r}" if isinstance(dataset, ImportedConfig) else "the built-in catalog"


def known_metrics(config: TrialConfig) -> set[str]:
    """Names of the metrics a trial with this config reports, as its stages declare them (``*``: any text)."""
    return trial_metric_names(config)


# dataset keys a study may set that mean the same on an imported dataset (the view and its modalities)
IMPORTED_VIEW_KEYS = tuple(f.name for f in dataclasses.fields(ImportedConfig) if f.name not in ("source", "name", "root", "path"))


def retarget_study(study: Study, name: str, root: str | Path | None = None, check: bool = True) -> Study:
    """The study run on imported dataset ``name``, results under ``<study>-<name>``.

    A study of another imported dataset keeps its view and modality keys (``modalities``, ``text``,
    ``min_item_count``, ...); a catalog study's dataset keys describe the generator and are all dropped. The
    smoke section likewise, sampling 500 sequences unless it says otherwise. The root is written as an
    absolute path (trials run elsewhere)."""
    folder = dataset_folder(name, root)  # fails early, listing the datasets that exist
    own = study.base.get("dataset") or {}
    imported = own.get("source") == "imported"
    kept = {key: value for key, value in own.items() if imported and key in IMPORTED_VIEW_KEYS}
    base = {**study.base, "dataset": {**kept, "source": "imported", "name": name, "root": str(folder.parent)}}
    smoke = {k: v for k, v in study.smoke.items() if not k.startswith("dataset.") or (imported and _view_key(k))}
    smoke.setdefault("dataset.max_sequences", 500)
    moved = dataclasses.replace(study, name=f"{study.name}-{name}", base=base, smoke=smoke)
    return checked(moved) if check else _respelled(moved)


def _view_key(path: str) -> bool:
    return path.split(".")[1] in IMPORTED_VIEW_KEYS


def with_settings(study: Study, settings: Sequence[str], check: bool = True) -> Study:
    """The study with ``KEY=VALUE`` settings (dotted config paths, YAML values) applied to its base config,
    named ``<study>-set-<hash of the settings>`` so its results never land in the shipped study's folder.

    A setting the axes also set is refused (the axes would overwrite it in every trial)."""
    updates = dict(_parse_setting(item) for item in settings)
    axis_keys = {key for axis in study.axes for key in _axis_keys(axis)}
    clash = sorted(key for key in updates if any(_overlap(key, set_by_axis) for set_by_axis in axis_keys))
    require(not clash, "--set", f"{', '.join(clash)} is set by the study's axes; choose the axis value instead")
    if not updates:
        return study
    name = f"{study.name}-set-{stable_hash(updates, length=8)}"  # never the folder of the study as shipped
    varied = dataclasses.replace(study, name=name, base=override(study.base, updates))
    return checked(varied) if check else _respelled(varied)


def _parse_setting(item: str) -> tuple[str, Any]:
    key, sep, text = item.partition("=")
    require(bool(sep) and bool(key.strip()), "--set", f"expected KEY=VALUE (a dotted config path), got {item!r}")
    try:
        return key.strip(), yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {key.strip()}: {text!r} is not a YAML value ({error.problem})") from None


def _overlap(path: str, other: str) -> bool:
    """Whether setting one dotted path changes the other (equal, or one a section holding the other)."""
    return path == other or path.startswith(f"{other}.") or other.startswith(f"{path}.")


def _axis_keys(axis: Axis) -> set[str]:
    return {key for setting in axis.settings.values() for key in setting} if axis.settings else {axis.name}


def checked(study: Study) -> Study:
    """The study with its axes spelled out again for its (new) base, every point checked."""
    study = _respelled(study)
    _check_points(study)
    return study


def _respelled(study: Study) -> Study:
    """The study with its axes spelled out again for its (new) base (modality labels follow the data)."""
    return dataclasses.replace(study, axes=_parse_axes(study.axes_spec, study.base, study.source) if study.axes_spec else study.axes)
