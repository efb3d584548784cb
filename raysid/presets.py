"""Named model sizes of the generative recommenders: dotted ``recommender`` overrides, per recommender kind.

A preset is the same kind of update as a study's ``smoke:`` section or an axis label: ``{"recommender.d_model":
128, ...}``. It only produces config values (it is left out of the code version, ``CODE_EXCLUDED``); the
configs it builds are hashed like any other.

Where each figure comes from:

- ``spine`` is the config classes' own defaults (``T5RecommenderConfig``, ``GPT2RecommenderConfig``), the size
  the spine was built at. The shipped MusicRec studies shrink it further (``max_history: 5``, ``d_ff: 128``,
  ``dropout: 0``), so ``--preset spine`` on them is not a no-op.
- ``paper``, T5: TIGER's sequence-to-sequence model (Rajput et al. 2023, "Recommender Systems with Generative
  Retrieval", §4 implementation details; the work MusicRec follows, musicrec.txt line 192 cites it for μ):
  4 encoder and 4 decoder layers, 6 self-attention heads of dimension 64, ReLU, MLP dimension 1024, input
  dimension 128, dropout 0.1; histories of at most 20 items. TIGER is not among ../shared/papers/: these
  figures are the ones issue 11 and its brief quote from it.
- ``t5-small``, T5: MusicRec's own statement, "we instantiate MusicRec on the T5-small (Raffel et al. 2020)
  architecture" (musicrec.txt line 192): d_model 512, d_ff 2048, 6 + 6 layers, 8 heads of d_kv 64, dropout
  0.1 (T5-small as Raffel et al. define it); the history length is TIGER's 20 (MusicRec does not state one).
- ``paper``, GPT-2: FusID trains "a GPT-2 [18] style decoder-only structure" (fusid.txt line 76) and gives no
  size; [18] is Radford et al. 2019, whose smallest model is 12 layers of width 768 with 12 heads (GPT-2
  small, feed-forward 4 × 768, dropout 0.1). The context is FusID's: at most the first 30 tracks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from raysid.config import ConfigError, build, override

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "spine": {
        "t5": {"recommender.d_model": 64, "recommender.d_ff": 256, "recommender.num_layers": 2,
               "recommender.num_heads": 4, "recommender.d_kv": 16, "recommender.dropout": 0.1,
               "recommender.max_history": 20},
        "gpt2": {"recommender.n_embd": 64, "recommender.n_layer": 2, "recommender.n_head": 4,
                 "recommender.n_inner": 0, "recommender.dropout": 0.1, "recommender.max_context_items": 30},
    },
    "paper": {
        "t5": {"recommender.d_model": 128, "recommender.d_ff": 1024, "recommender.num_layers": 4,
               "recommender.num_heads": 6, "recommender.d_kv": 64, "recommender.dropout": 0.1,
               "recommender.max_history": 20},
        "gpt2": {"recommender.n_embd": 768, "recommender.n_layer": 12, "recommender.n_head": 12,
                 "recommender.n_inner": 3072, "recommender.dropout": 0.1, "recommender.max_context_items": 30},
    },
    "t5-small": {
        "t5": {"recommender.d_model": 512, "recommender.d_ff": 2048, "recommender.num_layers": 6,
               "recommender.num_heads": 8, "recommender.d_kv": 64, "recommender.dropout": 0.1,
               "recommender.max_history": 20},
    },
}
"""Preset name -> recommender kind -> dotted overrides of the trial config."""


def preset_overrides(name: str, kind: str) -> dict[str, Any]:
    """The dotted overrides of preset ``name`` for recommender ``kind``; ConfigError naming the valid ones."""
    if name not in PRESETS:
        raise ConfigError(f"preset {name!r}: unknown; valid presets are: {', '.join(PRESETS)}")
    if kind not in PRESETS[name]:
        raise ConfigError(f"preset {name!r} has no sizes for recommender kind {kind!r}; "
                          f"it has: {', '.join(PRESETS[name])}")
    return dict(PRESETS[name][kind])


def recommender_section(name: str, kind: str, updates: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``recommender`` section (without ``kind``) of preset ``name`` with ``updates`` ({field: value}) on top."""
    nested = override({}, preset_overrides(name, kind))["recommender"]
    return {**nested, **dict(updates or {})}


def recommender_config(name: str, kind: str, updates: Mapping[str, Any] | None = None) -> Any:
    """The ``kind`` recommender's config at preset ``name``, fields in ``updates`` set on top (validated)."""
    from raysid.recommenders import get_recommender

    config_class = get_recommender(kind).config
    return build(config_class, recommender_section(name, kind, updates), f"preset {name}: recommender")


def study_kind(study: Any) -> str:
    """The recommender kind of a study's base config (default t5)."""
    return str((study.base.get("recommender") or {}).get("kind", "t5"))


def apply_preset(study: Any, name: str) -> Any:
    """``study`` with preset ``name`` written into its base (axes and smoke overrides still apply on top), its
    name (and so its results folder) ``<study>-<name>``. Every grid label must still build a valid config."""
    kind, sized = study_kind(study), sorted({kind for kinds in PRESETS.values() for kind in kinds})
    if kind not in sized:
        raise ConfigError(f"{study.source}: preset {name!r} sizes the generative recommenders ({', '.join(sized)}); "
                          f"this study's recommender is {kind!r}")
    base = override(study.base, preset_overrides(name, kind))
    presetted = dataclasses.replace(study, name=f"{study.name}-{name}", base=base)
    first = presetted.first_point()
    for axis in presetted.axes:
        for value in axis.values:
            point = dict(first, **{axis.name: int(value) if axis.kind == "int" else value})
            presetted.resolve(point)
            presetted.resolve(point, smoke=True)
    return presetted
