"""README blocks generated from committed results, so that no result figure is typed by hand.

A block is delimited by two HTML comments; everything between them is rewritten by ``raysid docs``::

    <!-- results:musicrec-ratio metrics=test/hr@10,test/ndcg@10 floor=test/ndcg@10 -->
    ...generated...
    <!-- /results -->

``results:NAME`` names the folder ``results/NAME/`` (its ``trials.parquet``); the report layout is the
``report:`` section of ``search_spaces/STUDY.yaml`` (STUDY = NAME unless ``study=`` says otherwise). Options:

- ``metrics=a,b``: the metric columns of the table (default: the layout's);
- ``compare=METRIC`` and ``mode=max|min``: the metric of the paired verdicts and which way is better
  (default: the layout's ``best`` and ``mode``); its best mean is bold, and starred ★ only when a paired
  interval separates it from every other row;
- ``pairs=best|all|none``: verdicts of the best row against each other row (default), of every pair, or none;
  ``against=ROW``: of that row (e.g. the full model of an ablation) against each other row instead of the best;
- ``floor=a,b``: per metric, the range of row mean / baseline mean and how many rows lie above the
  baseline by a paired interval that excludes 0;
- ``order=A>B>C``: whether the paired differences agree with that order of rows (``>`` = better); several
  orders are separated by ``;`` (``order=A>B;C>D``), each judged on its own;
- ``table=no``: leave the table out (another block of the same folder shows it).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from raysid.reporting import paired
from raysid.reporting.paired import BASELINE, PairedDifference
from raysid.reporting.summary import ReportLayout, markdown_table, summarize

# Markers count only at the start of a line, so prose may quote them mid-line.
BLOCK = re.compile(r"^<!-- results:(?P<spec>[^\n]*?) -->\n(?P<body>.*?)^<!-- /results -->", re.DOTALL | re.MULTILINE)
OPENING = re.compile(r"^<!-- results:", re.MULTILINE)
OPTIONS = ("study", "metrics", "compare", "mode", "pairs", "against", "floor", "order", "table")
PAIRS = ("best", "all", "none")


@dataclass(frozen=True)
class BlockSpec:
    """A parsed marker: the results folder and the block's options."""

    folder: str
    study: str
    metrics: tuple[str, ...] = ()
    compare: str = ""
    mode: str = ""
    pairs: str = "best"
    against: str = ""
    floor: tuple[str, ...] = ()
    orders: tuple[tuple[str, ...], ...] = ()
    table: bool = True

    @property
    def name(self) -> str:
        return f"results:{self.folder}"


def parse_spec(spec: str, where: str) -> BlockSpec:
    """``NAME key=value ...`` -> BlockSpec; a bad option raises ValueError naming it and the valid ones."""
    words = spec.split()
    if not words:
        raise ValueError(f"{where}: the marker names no results folder (<!-- results:NAME ... -->)")
    values: dict[str, str] = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or key not in OPTIONS or not value:
            raise ValueError(f"{where}: bad option {word!r}; options are key=value with key one of {', '.join(OPTIONS)}")
        values[key] = value
    if values.get("pairs", "best") not in PAIRS:
        raise ValueError(f"{where}: pairs={values['pairs']!r}; valid values are: {', '.join(PAIRS)}")
    if values.get("mode", "max") not in ("max", "min"):
        raise ValueError(f"{where}: mode={values['mode']!r}; valid values are: max, min")
    if values.get("table", "yes") not in ("yes", "no"):
        raise ValueError(f"{where}: table={values['table']!r}; valid values are: yes, no")
    orders = tuple(tuple(r for r in o.split(">") if r) for o in values.get("order", "").split(";") if o)
    if any(len(order) < 2 for order in orders):
        raise ValueError(f"{where}: order={values['order']!r}; expected rows separated by '>' (A>B>C), orders by ';'")
    listed = {key: tuple(v for v in values.get(key, "").split(",") if v) for key in ("metrics", "floor")}
    return BlockSpec(
        folder=words[0], study=values.get("study", words[0]), metrics=listed["metrics"],
        compare=values.get("compare", ""), mode=values.get("mode", ""), pairs=values.get("pairs", "best"),
        against=values.get("against", ""), floor=listed["floor"],
        orders=orders,
        table=values.get("table", "yes") == "yes",
    )


# --------------------------------------------------------------------------------------------------
# rendering


def _number(value: float, signed: bool = False) -> str:
    """Four decimals (one for magnitudes of 100 and more), a true minus sign, + when asked."""
    text = f"{value:+.1f}" if abs(value) >= 100 else f"{value:+.4f}"
    text = text if signed else text.lstrip("+")
    return text.replace("-", "−")


def format_difference(difference: PairedDifference) -> str:
    """"2:2 vs 1:3: +0.0032 [−0.0100, 0.0200] over 3 seeds: does not separate"."""
    head = f"{difference.first} vs {difference.second}: "
    if difference.mean is None:
        return head + f"no seed with a value in both: {difference.verdict}"
    if difference.low is None:
        return head + f"{_number(difference.mean, True)} over 1 seed (no interval): {difference.verdict}"
    interval = f"[{_number(difference.low)}, {_number(difference.high)}]"
    return head + f"{_number(difference.mean, True)} {interval} over {difference.seeds} seeds: {difference.verdict}"


def _layout(spec: BlockSpec, layout: ReportLayout, trials: pl.DataFrame) -> ReportLayout:
    """The study's layout with the block's metrics, compared metric and mode."""
    metrics = spec.metrics or layout.metrics
    best = spec.compare or layout.best
    changed = dataclasses.replace(layout, metrics=metrics, best=best, mode=spec.mode or layout.mode)
    missing = [m for m in changed.columns + spec.floor if m not in trials.columns]
    if missing:
        raise ValueError(f"no column {', '.join(map(repr, missing))} in results/{spec.folder}/trials.parquet; "
                         f"metric columns are: {', '.join(c for c in trials.columns if '/' in c and not c.startswith('config.'))}")
    return changed


def _verdict_lines(spec: BlockSpec, trials: pl.DataFrame, layout: ReportLayout) -> list[str]:
    """The paired verdicts the block asks for, as a sentence and a list."""
    if spec.pairs == "none":
        return []
    if spec.pairs == "all":
        differences = paired.all_pairs(trials, layout)
        intro = f"Paired differences in `{layout.best}` between every two rows"
    else:
        first = spec.against or paired.best_row(trials, layout)
        differences = paired.against_row(trials, layout, first)
        which = f"row {first}" if spec.against else f"the best row ({first})"
        intro = f"Paired differences in `{layout.best}`, {which} minus each other row"
    if not differences:
        return []
    intro += " (mean of the per-seed differences over the seeds both rows have [95% t-interval]):"
    return ["", intro, "", *(f"- {format_difference(d)}" for d in differences)]


def _floor_line(trials: pl.DataFrame, layout: ReportLayout, metric: str) -> str:
    """"`m`: 3.21–3.33× the popularity floor (…); rows above it …: 3 of 3"."""
    if layout.baseline is None or f"{layout.baseline}/{metric}" not in trials.columns:
        raise ValueError(f"floor={metric}: no baseline column {layout.baseline}/{metric} in the trials")
    summary = summarize(trials, dataclasses.replace(layout, metrics=(metric,), best=metric))
    floor = summary.filter(pl.col("is_baseline"))[f"{metric}/mean"][0]
    rows = summary.filter(~pl.col("is_baseline"))
    means = [m for m in rows[f"{metric}/mean"].to_list() if m is not None]
    if floor is None or floor == 0 or not means:
        return f"- `{metric}`: no ratio to the {layout.baseline} floor (its mean is {floor})."
    low, high = min(means) / floor, max(means) / floor
    span = f"{low:.2f}×" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}–{high:.2f}×"
    labels = rows["group"].to_list()
    below = [row for row in labels
             if not paired.paired_difference(trials, layout, metric, row, BASELINE).favours_first("max")]
    others = f" (not: {', '.join(below)})" if below else ""
    return (f"- `{metric}`: {span} the {layout.baseline} floor (row mean / floor mean); rows above the floor by a "
            f"paired interval that excludes 0: {len(labels) - len(below)} of {len(labels)}{others}.")


def _order_lines(order: tuple[str, ...], trials: pl.DataFrame, layout: ReportLayout) -> list[str]:
    """Every pair the order implies, and whether the paired differences agree, disagree or do not separate."""
    pairs = [paired.paired_difference(trials, layout, layout.best, order[i], order[j])
             for i in range(len(order)) for j in range(i + 1, len(order))]
    better = "higher" if layout.mode == "max" else "lower"
    agree = [d for d in pairs if d.favours_first(layout.mode)]
    against = [d for d in pairs if d.separates and not d.favours_first(layout.mode)]
    if against:
        outcome = "the results **disagree** with it (" + "; ".join(f"{d.first} vs {d.second}" for d in against) + \
                  " separate the other way)"
    elif len(agree) == len(pairs):
        outcome = "the results **agree** with it (every pair separates in its direction)"
    else:
        outcome = f"the results **do not separate** it ({len(agree)} of {len(pairs)} pairs separate in its direction, none against it)"
    head = f"Order {' > '.join(order)} on `{layout.best}` ({better} is better): {outcome}:"
    return ["", head, "", *(f"- {format_difference(d)}" for d in pairs)]


def _made_by_line(spec: BlockSpec, trials: pl.DataFrame, current: str) -> str:
    """Which code made the trials; **stale** when that is not the code version ``current`` of this checkout."""
    from raysid.provenance import PREFIX

    def values(field: str) -> list[str]:
        column = PREFIX + field
        return sorted(set(trials[column].drop_nulls().to_list())) if column in trials.columns else []

    versions, commits = values("code_version"), [c[:10] for c in values("commit")]
    regenerate = f"regenerate them with `raysid sweep {spec.study}`"
    if not versions:
        return f"**Stale**: these trials record no code version; {regenerate}."
    made = f"code version {', '.join(versions)} (commit {', '.join(commits) or 'unknown'})"
    if versions == [current]:
        return f"Made by {made}, the code of this checkout."
    return f"**Stale**: made by {made}; the code of this checkout is {current}: {regenerate}."


def render_block(spec: BlockSpec, trials: pl.DataFrame, layout: ReportLayout, current: str = "") -> str:
    """The generated text between the markers (ending in a newline).

    ``current`` is the code version the trials are judged against (default: this checkout's).
    """
    from raysid.cache_manifest import code_version

    layout = _layout(spec, layout, trials)
    lines = [f"<!-- generated by `raysid docs` from results/{spec.folder}/trials.parquet: edit the marker, not this text -->"]
    if spec.table:
        lines += ["", *markdown_table(summarize(trials, layout), layout, paired.separated_best(trials, layout)[0])]
    lines += _verdict_lines(spec, trials, layout)
    if spec.floor:
        lines += ["", *(_floor_line(trials, layout, m) for m in spec.floor)]
    for order in spec.orders:
        lines += _order_lines(order, trials, layout)
    lines += ["", _made_by_line(spec, trials, current or code_version())]
    return "\n".join(lines).lstrip("\n") + "\n"


# --------------------------------------------------------------------------------------------------
# files


@dataclass(frozen=True)
class Refresh:
    """One file's outcome: its new text and the names of the blocks whose text changed."""

    path: Path
    text: str
    stale: tuple[str, ...]


def readme_files(root: str | Path) -> list[Path]:
    """README.md, every docs/*.md and every results/*/README.md under root that exists."""
    root = Path(root)
    found = [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "results").glob("*/README.md"))]
    return [p for p in found if p.is_file()]


def _source(spec: BlockSpec, root: Path, where: str) -> tuple[pl.DataFrame, ReportLayout]:
    """The folder's trials and the study's report layout; a missing one raises ValueError naming it."""
    from raysid.config import ConfigError
    from raysid.sweep.space import load_study

    path = root / "results" / spec.folder / "trials.parquet"
    if not path.is_file():
        known = sorted(p.parent.name for p in (root / "results").glob("*/trials.parquet"))
        raise ValueError(f"{where}: no {path}; results folders with trials are: {', '.join(known) or 'none'}")
    own = root / "search_spaces" / f"{spec.study}.yaml"  # the root's own study first, then the usual search
    try:
        layout = load_study(own if own.is_file() else spec.study).report
    except ConfigError as error:
        raise ValueError(f"{where}: {error}") from None
    return pl.read_parquet(path), layout


def refresh_text(text: str, root: str | Path, where: str) -> tuple[str, tuple[str, ...]]:
    """Text with every block regenerated, and the names of the blocks that changed."""
    root = Path(root)
    if len(OPENING.findall(text)) != len(BLOCK.findall(text)):
        line = _unclosed_line(text)
        raise ValueError(f"{where}:{line}: a <!-- results:NAME --> marker without its <!-- /results --> "
                         "(or with the opening comment not alone on its line)")
    stale: list[str] = []
    parts, position = [], 0
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        spec = parse_spec(match["spec"], f"{where}:{line}")
        trials, layout = _source(spec, root, f"{where}:{line}")
        try:
            body = render_block(spec, trials, layout)
        except ValueError as error:
            raise ValueError(f"{where}:{line}: {spec.name}: {error}") from None
        if body != match["body"]:
            stale.append(f"{where}:{line} {spec.name}")
        parts += [text[position:match.start("body")], body]
        position = match.end("body")
    parts.append(text[position:])
    return "".join(parts), tuple(stale)


def _unclosed_line(text: str) -> int:
    """Line of the first opening marker that no complete block starts at."""
    starts = {m.start() for m in BLOCK.finditer(text)}
    for match in OPENING.finditer(text):
        if match.start() not in starts:
            return text.count("\n", 0, match.start()) + 1
    return 1


def refresh(root: str | Path = ".") -> list[Refresh]:
    """Regenerate the blocks of every README under root (nothing written: see ``write``)."""
    root = Path(root)
    outcomes = []
    for path in readme_files(root):
        where = str(path.relative_to(root))
        text, stale = refresh_text(path.read_text(), root, where)
        outcomes.append(Refresh(path, text, stale))
    return outcomes


def write(outcomes: list[Refresh]) -> list[str]:
    """Write the files whose blocks changed; return the names of the changed blocks."""
    changed = []
    for outcome in outcomes:
        if outcome.stale:
            outcome.path.write_text(outcome.text)
            changed += outcome.stale
    return changed
