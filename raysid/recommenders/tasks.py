"""MusicRec's recommendation generation tasks over multi-modal identifiers (musicrec.txt, "Recommendation
Generation Tasks").

An identifier's positions are named by the tokenizer: shared levels ``s1 … s{L_e}``, then per modality
``{modality}1 …`` (MusicRec), and the tie-break digit ``t``. A modality's own view of an item is its shared
codes followed by that modality's specific codes.

- ``mmg`` — multi-modal generation: the history's full identifiers (all modalities interleaved per item) ->
  the next item's full identifier. This is also the ranking task at inference.
- ``umg`` — uni-modal generation, one task per modality m: the history's m-views -> the next item's m-view.
- ``mma`` — multi-modal item alignment: an item's specific codes of modality a -> its specific codes of
  modality b, for text -> other and other -> text (every ordered pair when there is no ``text`` modality).

With more than one task each task has its own token, placed before the encoder's eos; each training batch
trains the ranking task (mmg, when enabled) plus one auxiliary task (a umg or mma task) drawn from the seeded
generator, so adding tasks never takes training steps away from the ranking task. Where the paper is silent: without ``mmg`` in training
("w/o MMG"), ranking still decodes full identifiers from the ``mmg`` prompt, which the model then learns
only through the other tasks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from raysid.config import ConfigError

TASK_KINDS = ("mmg", "umg", "mma")
_POSITION = re.compile(r"^(?P<group>[A-Za-z_]+?)(?P<level>\d+)$")


@dataclass(frozen=True)
class Task:
    """One generation task: which identifier columns the encoder reads and the decoder writes."""

    name: str  # "mmg", "umg:text", "mma:text>audio"
    source: tuple[int, ...]  # identifier columns of each input item
    target: tuple[int, ...]  # identifier columns of the output
    item_input: bool  # True: the input is the target item itself (alignment), not the history
    token: int | None  # task token id, None when training a single task


def modality_columns(position_names: tuple[str, ...]) -> tuple[tuple[int, ...], dict[str, tuple[int, ...]]]:
    """Shared columns (``s1``, ``s2``, …) and each modality's specific columns, in position order."""
    shared: list[int] = []
    groups: dict[str, list[int]] = {}
    for column, name in enumerate(position_names):
        match = _POSITION.match(name)
        if match is None:
            continue  # the tie-break digit and other ungrouped positions belong to the full identifier only
        if match["group"] == "s":
            shared.append(column)
        else:
            groups.setdefault(match["group"], []).append(column)
    return tuple(shared), {name: tuple(columns) for name, columns in groups.items()}


def build_tasks(kinds: tuple[str, ...], position_names: tuple[str, ...], first_token: int) -> tuple[Task, list[Task], int]:
    """The inference task (mmg), the training tasks of ``kinds`` and the number of task tokens (ids from
    ``first_token`` on; none for mmg alone)."""
    unknown = [kind for kind in kinds if kind not in TASK_KINDS]
    if unknown or not kinds:
        raise ConfigError(f"recommender.tasks: got {list(kinds)}; choose one or more of: {', '.join(TASK_KINDS)}")
    everything = tuple(range(len(position_names)))
    specs = [("mmg", everything, everything, False)]
    shared, groups = modality_columns(position_names)
    if ("umg" in kinds or "mma" in kinds) and len(groups) < 2:
        raise ConfigError(
            f"recommender.tasks: 'umg' and 'mma' need identifiers with modality-specific positions (MusicRec's "
            f"'s1', 'text1', 'audio1', …); got positions {list(position_names)}"
        )
    if "umg" in kinds:
        specs += [(f"umg:{m}", shared + cols, shared + cols, False) for m, cols in groups.items()]
    if "mma" in kinds:
        specs += [(f"mma:{a}>{b}", groups[a], groups[b], True) for a, b in _alignment_pairs(list(groups))]
    tokens = len(kinds) > 1 or kinds != ("mmg",)
    tasks = [Task(n, s, t, i, first_token + k if tokens else None) for k, (n, s, t, i) in enumerate(specs)]
    trained = [task for task in tasks if task.name.split(":")[0] in kinds]
    return tasks[0], trained, len(tasks) if tokens else 0


def _alignment_pairs(modalities: list[str]) -> list[tuple[str, str]]:
    """text -> other and other -> text; every ordered pair when no modality is called text."""
    if "text" in modalities:
        others = [m for m in modalities if m != "text"]
        return [("text", m) for m in others] + [(m, "text") for m in others]
    return [(a, b) for a in modalities for b in modalities if a != b]
