"""The built-in synthetic music catalog: the embedded default dataset, generated in seconds, no download.

Tracks sit in a hierarchy genre -> sub-genre -> artist (each artist in one sub-genre). Three modalities
(``text``, ``audio``, ``tags``) each mix a *shared* signal, the hierarchy latent seen through a
per-modality random projection, with a *modality-specific* per-track latent seen by that modality only,
plus noise; ``shared_weight`` sets the share of signal variance that is shared. Playlists follow latent
tastes: a popularity-skewed home sub-genre, drift to a related sub-genre of the same genre, artist
runs, and Zipf popularity within the current sub-genre, so the next track is predictable from the
recent ones and a sequential model beats global popularity.

Radio feedback (``skips.enabled``, off by default): a share of the positions after the first play a stray
track, drawn by popularity from the whole catalog, in place of the session's track, and every track is then
played or skipped. The skip chance depends on the track's fit to the session's taste (its sub-genre against
the sub-genre the session was in at that step) and on a hidden per-track appeal, so a sequential model can
learn it. It draws from its own generator: with skips off the catalog is bit-identical to one generated
without this feature, and with them on only the replaced tracks change (``Dataset.feedback`` is added).

Everything is vectorised over tracks, and playlists are generated step by step in parallel, so a
catalog of a million tracks takes seconds (see ``benchmarks/catalog_scale.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from raysid.config import build, require
from raysid.data.dataset import Dataset

_CHUNK = 131_072  # tracks per block when building modality matrices (bounds temporary memory)
_ARTIST_TRIES = 3  # redraws of a same-artist next track that repeats a playlist track
_SUBGENRE_TRIES = 10  # redraws of a sub-genre next track before the exhaustive fallback
_TAGS_PER_TRACK = (2, 5)  # inclusive range of tags per track
_GENRE_TAGS, _SUBGENRE_TAGS = 2, 3  # tags associated with each genre / sub-genre
_GENRE_TAG_BONUS, _SUBGENRE_TAG_BONUS = 2.0, 3.0  # logit bonus of associated tags
_SKIP_STREAM = 1  # second entropy word of the skip simulation's generator: np.random.default_rng([seed, 1])


@dataclass(frozen=True)
class SkipConfig:
    """Simulated radio feedback (played / skipped); config section ``dataset.skips``."""

    enabled: bool = False  # off: no feedback, and the catalog is exactly as without this section
    stray_prob: float = 0.3  # chance that a position after the first plays a stray track from the whole catalog
    fit_skip_prob: float = 0.1  # skip chance of a track of average appeal in the session's current sub-genre
    misfit_skip_prob: float = 0.8  # skip chance of a track of average appeal outside it
    appeal: float = 0.75  # std of each track's hidden appeal, subtracted from the skip log-odds

    def __post_init__(self) -> None:
        for name in ("stray_prob", "fit_skip_prob", "misfit_skip_prob"):
            value = getattr(self, name)
            require(0.0 <= value <= 1.0, f"dataset.skips.{name}", f"expected a number in [0, 1], got {value}")
        require(self.appeal >= 0, "dataset.skips.appeal", f"expected a number >= 0, got {self.appeal}")


@dataclass(frozen=True)
class CatalogConfig:
    """Size and structure of the synthetic catalog; defaults make a laptop run of a few minutes."""

    num_tracks: int = 2000  # items in the catalog
    num_playlists: int = 1500  # interaction sequences
    num_genres: int = 8  # top level of the hierarchy
    subgenres_per_genre: int = 4  # sub-genres of each genre
    num_artists: int = 250  # each artist belongs to one sub-genre; at least one per sub-genre
    text_dim: int = 64  # width of the text-embedding-like modality (rows are unit length)
    audio_dim: int = 32  # width of the audio modality
    num_tags: int = 48  # width of the multi-hot tag modality
    latent_dim: int = 16  # width of the hierarchy latent and of each modality-specific latent
    shared_weight: float = 0.6  # share of each modality's signal variance that comes from the hierarchy
    noise: float = 0.1  # std of the per-entry Gaussian noise added to every modality
    min_length: int = 5  # shortest playlist
    max_length: int = 40  # longest playlist
    popularity_exponent: float = 1.0  # Zipf skew of track (within sub-genre) and sub-genre popularity
    same_artist_prob: float = 0.3  # chance the next track is by the previous track's artist
    switch_subgenre_prob: float = 0.1  # chance per step of drifting to another sub-genre of the genre
    skips: SkipConfig = field(default_factory=SkipConfig)  # simulated played/skipped feedback (off by default)
    seed: int = 0  # the only source of randomness

    def __post_init__(self) -> None:
        if isinstance(self.skips, Mapping):
            object.__setattr__(self, "skips", build(SkipConfig, self.skips, "dataset.skips"))
        _validate(self)

    @property
    def num_subgenres(self) -> int:
        return self.num_genres * self.subgenres_per_genre


def _validate(cfg: CatalogConfig) -> None:
    """Raise ConfigError naming the first invalid field of ``cfg``."""
    require(cfg.num_tracks >= 10, "dataset.num_tracks", f"expected an integer >= 10, got {cfg.num_tracks}")
    require(cfg.num_playlists >= 1, "dataset.num_playlists", f"expected an integer >= 1, got {cfg.num_playlists}")
    require(cfg.num_genres >= 1, "dataset.num_genres", f"expected an integer >= 1, got {cfg.num_genres}")
    require(cfg.subgenres_per_genre >= 1, "dataset.subgenres_per_genre",
            f"expected an integer >= 1, got {cfg.subgenres_per_genre}")
    require(cfg.num_artists >= cfg.num_subgenres, "dataset.num_artists",
            f"expected >= num_genres * subgenres_per_genre = {cfg.num_subgenres}, got {cfg.num_artists}")
    require(cfg.num_artists <= cfg.num_tracks, "dataset.num_artists",
            f"expected <= num_tracks = {cfg.num_tracks} (every artist has a track), got {cfg.num_artists}")
    for name in ("text_dim", "audio_dim", "latent_dim"):
        value = getattr(cfg, name)
        require(value >= 1, f"dataset.{name}", f"expected an integer >= 1, got {value}")
    require(cfg.num_tags >= 4, "dataset.num_tags", f"expected an integer >= 4, got {cfg.num_tags}")
    require(cfg.noise >= 0, "dataset.noise", f"expected a number >= 0, got {cfg.noise}")
    require(cfg.min_length >= 3, "dataset.min_length", f"expected an integer >= 3, got {cfg.min_length}")
    require(cfg.max_length >= cfg.min_length, "dataset.max_length",
            f"expected >= min_length = {cfg.min_length}, got {cfg.max_length}")
    require(cfg.max_length <= cfg.num_tracks, "dataset.max_length",
            f"expected <= num_tracks = {cfg.num_tracks} (no track repeats in a playlist), got {cfg.max_length}")
    require(cfg.popularity_exponent >= 0, "dataset.popularity_exponent",
            f"expected a number >= 0, got {cfg.popularity_exponent}")
    for name in ("shared_weight", "same_artist_prob", "switch_subgenre_prob"):
        value = getattr(cfg, name)
        require(0.0 <= value <= 1.0, f"dataset.{name}", f"expected a number in [0, 1], got {value}")
    require(cfg.seed >= 0, "dataset.seed", f"expected an integer >= 0, got {cfg.seed}")


@dataclass(frozen=True)
class _Hierarchy:
    """Who belongs where, and how popular each track and sub-genre is."""

    track_genre: np.ndarray  # (tracks,) int64
    track_subgenre: np.ndarray  # (tracks,) int64, global sub-genre id; genre = subgenre // subgenres_per_genre
    track_artist: np.ndarray  # (tracks,) int64
    artist_subgenre: np.ndarray  # (artists,) int64
    track_weight: np.ndarray  # (tracks,) float64 Zipf weight of the track's rank within its sub-genre
    subgenre_weight: np.ndarray  # (subgenres,) float64 probabilities, Zipf over a random rank


def generate_catalog(cfg: CatalogConfig) -> Dataset:
    """Generate the catalog dataset ``"catalog"``; identical output for an identical ``cfg``."""
    rng = np.random.default_rng(cfg.seed)
    hierarchy = _hierarchy(rng, cfg)
    items = _items_frame(rng, cfg, hierarchy)
    modalities = _modalities(rng, cfg, hierarchy)
    sequences = _playlists(rng, cfg, hierarchy)
    feedback = None
    if cfg.skips.enabled:
        sequences, feedback = _radio_feedback(cfg, hierarchy, sequences)
    meta = {"config": dataclasses.asdict(cfg), "num_subgenres": cfg.num_subgenres}
    return Dataset(name="catalog", items=items, modalities=modalities, sequences=sequences, meta=meta, feedback=feedback)


# --- hierarchy and item metadata ------------------------------------------------------------------


def _hierarchy(rng: np.random.Generator, cfg: CatalogConfig) -> _Hierarchy:
    """Assign artists to sub-genres and tracks to artists (every group non-empty), then popularity."""
    num_sub, num_artists, num_tracks = cfg.num_subgenres, cfg.num_artists, cfg.num_tracks
    extra_artists = rng.integers(0, num_sub, num_artists - num_sub)
    artist_subgenre = np.concatenate([np.arange(num_sub), extra_artists])  # (artists,)
    artist_size = rng.lognormal(0.0, 1.0, num_artists)  # skewed catalogue size per artist
    extra_tracks = rng.choice(num_artists, num_tracks - num_artists, p=artist_size / artist_size.sum())
    track_artist = np.concatenate([np.arange(num_artists), extra_tracks])[rng.permutation(num_tracks)]
    track_subgenre = artist_subgenre[track_artist]  # (tracks,)
    subgenre_rank = rng.permutation(num_sub) + 1.0
    subgenre_weight = subgenre_rank ** -cfg.popularity_exponent
    track_rank = _random_rank_within(rng, track_subgenre, num_sub)
    return _Hierarchy(
        track_genre=track_subgenre // cfg.subgenres_per_genre,
        track_subgenre=track_subgenre,
        track_artist=track_artist,
        artist_subgenre=artist_subgenre,
        track_weight=track_rank ** -cfg.popularity_exponent,
        subgenre_weight=subgenre_weight / subgenre_weight.sum(),
    )


def _random_rank_within(rng: np.random.Generator, groups: np.ndarray, num_groups: int) -> np.ndarray:
    """(items,) float64 rank 1..n of each item inside its group, in a random order."""
    order = np.lexsort((rng.random(len(groups)), groups))  # grouped, shuffled inside each group
    counts = np.bincount(groups, minlength=num_groups)
    start = np.cumsum(counts) - counts  # (groups,) first position of each group in ``order``
    rank = np.empty(len(groups), dtype=np.float64)
    rank[order] = np.arange(len(groups)) - start[groups[order]] + 1.0
    return rank


def _items_frame(rng: np.random.Generator, cfg: CatalogConfig, h: _Hierarchy) -> pl.DataFrame:
    """Items metadata; release era, tempo and key mode depend on the genre."""
    num_tracks, genres = cfg.num_tracks, cfg.num_genres
    era = rng.uniform(1965.0, 2018.0, genres)  # (genres,) mean release year
    artist_year = era[h.artist_subgenre // cfg.subgenres_per_genre] + rng.normal(0.0, 5.0, cfg.num_artists)
    year = np.clip(np.rint(artist_year[h.track_artist] + rng.normal(0.0, 3.0, num_tracks)), 1950, 2025)
    genre_tempo = rng.uniform(80.0, 160.0, genres)  # (genres,) mean bpm
    sub_tempo = genre_tempo[np.arange(cfg.num_subgenres) // cfg.subgenres_per_genre]
    sub_tempo = sub_tempo + rng.normal(0.0, 6.0, cfg.num_subgenres)
    tempo = np.clip(sub_tempo[h.track_subgenre] + rng.normal(0.0, 8.0, num_tracks), 40.0, 220.0)
    minor_prob = rng.uniform(0.15, 0.85, genres)  # (genres,)
    minor = rng.random(num_tracks) < minor_prob[h.track_genre]
    key = rng.integers(0, 12, num_tracks) + 12 * minor  # pitch class + 12 for minor mode
    frame = pl.DataFrame({
        "item_id": np.arange(num_tracks, dtype=np.int64),
        "genre": h.track_genre.astype(np.int64),
        "subgenre": h.track_subgenre.astype(np.int64),
        "artist": h.track_artist.astype(np.int64),
        "release_year": year.astype(np.int64),
        "release_month": rng.integers(1, 13, num_tracks),
        "release_day": rng.integers(1, 29, num_tracks),
        "tempo": np.round(tempo, 1),
        "key": key.astype(np.int64),
        "popularity": _popularity_score(h),
    })
    return frame.with_columns(title=pl.format("track {} by artist {}", "item_id", "artist"))


def _popularity_score(h: _Hierarchy) -> np.ndarray:
    """(tracks,) float32 in [0, 100]: log of the track's expected share of playlist entries, rescaled."""
    sub_total = np.bincount(h.track_subgenre, weights=h.track_weight, minlength=len(h.subgenre_weight))
    share = h.subgenre_weight[h.track_subgenre] * h.track_weight / sub_total[h.track_subgenre]
    log_share = np.log(share)
    span = max(log_share.max() - log_share.min(), 1e-12)
    return (100.0 * (log_share - log_share.min()) / span).astype(np.float32)


# --- modalities -----------------------------------------------------------------------------------

MODALITIES = ("text", "audio", "tags")  # the catalog's item modalities, in this order


def _modalities(rng: np.random.Generator, cfg: CatalogConfig, h: _Hierarchy) -> dict[str, np.ndarray]:
    """``text`` (unit rows), ``audio`` (dense) and ``tags`` (multi-hot), all float32 (tracks, dim)."""
    shared = _shared_latent(rng, cfg, h)  # (tracks, latent_dim)
    text = _mix(rng, cfg, shared, cfg.text_dim)
    text /= np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
    audio = _mix(rng, cfg, shared, cfg.audio_dim)
    tags = _tags(rng, cfg, h, shared)
    return {"text": text, "audio": audio, "tags": tags}


def _shared_latent(rng: np.random.Generator, cfg: CatalogConfig, h: _Hierarchy) -> np.ndarray:
    """(tracks, latent_dim) float32 genre + sub-genre + artist vectors, unit variance per entry."""
    d = cfg.latent_dim
    genre = rng.standard_normal((cfg.num_genres, d), dtype=np.float32)
    subgenre = 0.8 * rng.standard_normal((cfg.num_subgenres, d), dtype=np.float32)
    artist = 0.6 * rng.standard_normal((cfg.num_artists, d), dtype=np.float32)
    latent = genre[h.track_genre] + subgenre[h.track_subgenre]
    latent += artist[h.track_artist]
    latent /= np.float32(np.sqrt(1.0 + 0.8**2 + 0.6**2))
    return latent


def _mix(rng: np.random.Generator, cfg: CatalogConfig, shared: np.ndarray, dim: int) -> np.ndarray:
    """(tracks, dim) float32: sqrt(w) shared @ P + sqrt(1 - w) specific @ S + noise, built in blocks.

    P and S are this modality's random projections; ``specific`` is a fresh per-track latent that no
    other modality sees.
    """
    d, num_tracks = cfg.latent_dim, shared.shape[0]
    scale = np.float32(1.0 / np.sqrt(d))
    shared_proj = rng.standard_normal((d, dim), dtype=np.float32) * scale * np.float32(np.sqrt(cfg.shared_weight))
    specific_proj = rng.standard_normal((d, dim), dtype=np.float32) * scale * np.float32(np.sqrt(1 - cfg.shared_weight))
    out = np.empty((num_tracks, dim), dtype=np.float32)
    for start in range(0, num_tracks, _CHUNK):
        block = slice(start, min(start + _CHUNK, num_tracks))
        specific = rng.standard_normal((block.stop - start, d), dtype=np.float32)  # (block, latent_dim)
        noise = rng.standard_normal((block.stop - start, dim), dtype=np.float32)  # (block, dim)
        out[block] = shared[block] @ shared_proj + specific @ specific_proj + np.float32(cfg.noise) * noise
    return out


def _tags(rng: np.random.Generator, cfg: CatalogConfig, h: _Hierarchy, shared: np.ndarray) -> np.ndarray:
    """(tracks, num_tags) float32 multi-hot: a few tags sampled without replacement (Gumbel top-k).

    Logits favour the tags associated with the track's genre and sub-genre, plus the shared/specific
    mix, so most tags come from the hierarchy and some are track-specific.
    """
    affinity = _tag_affinity(rng, cfg)  # (subgenres, tags)
    logits = _mix(rng, cfg, shared, cfg.num_tags)  # (tracks, tags)
    low, high = _TAGS_PER_TRACK[0], min(_TAGS_PER_TRACK[1], cfg.num_tags)
    count = rng.integers(low, high + 1, cfg.num_tracks)  # (tracks,) tags per track
    tags = np.zeros((cfg.num_tracks, cfg.num_tags), dtype=np.float32)
    for start in range(0, cfg.num_tracks, _CHUNK):
        rows = np.arange(start, min(start + _CHUNK, cfg.num_tracks))
        gumbel = -np.log(-np.log(rng.random((len(rows), cfg.num_tags)) + 1e-12) + 1e-12)
        score = affinity[h.track_subgenre[rows]] + logits[rows] + gumbel  # (block, tags)
        top = np.argsort(-score, axis=1)[:, :high]  # (block, high) best tags first
        keep = np.arange(high) < count[rows, None]
        tags[np.broadcast_to(rows[:, None], top.shape)[keep], top[keep]] = 1.0
    return tags


def _tag_affinity(rng: np.random.Generator, cfg: CatalogConfig) -> np.ndarray:
    """(subgenres, num_tags) logit bonus of the tags tied to each sub-genre and to its genre."""
    genre_tags = np.argsort(rng.random((cfg.num_genres, cfg.num_tags)), axis=1)[:, :_GENRE_TAGS]
    sub_tags = np.argsort(rng.random((cfg.num_subgenres, cfg.num_tags)), axis=1)[:, :_SUBGENRE_TAGS]
    affinity = np.zeros((cfg.num_subgenres, cfg.num_tags), dtype=np.float32)
    subgenres = np.arange(cfg.num_subgenres)[:, None]
    affinity[subgenres, genre_tags[subgenres[:, 0] // cfg.subgenres_per_genre]] += _GENRE_TAG_BONUS
    affinity[subgenres, sub_tags] += _SUBGENRE_TAG_BONUS
    return affinity


# --- playlists ------------------------------------------------------------------------------------


class _GroupSampler:
    """Draws, for each requested group (sub-genre or artist), one of its tracks in proportion to weight."""

    def __init__(self, groups: np.ndarray, weights: np.ndarray, num_groups: int):
        counts = np.bincount(groups, minlength=num_groups)  # (groups,) all > 0
        self.order = np.argsort(groups, kind="stable")  # (tracks,) track ids, grouped
        self.end = np.cumsum(counts)  # (groups,) exclusive end position in ``order``
        self.start = self.end - counts
        self.cumulative = np.cumsum(weights[self.order])  # (tracks,) float64
        self.base = np.concatenate([[0.0], self.cumulative])[self.start]  # weight before each group
        self.total = self.cumulative[self.end - 1] - self.base

    def draw(self, rng: np.random.Generator, group: np.ndarray) -> np.ndarray:
        """(n,) group ids -> (n,) track ids."""
        target = self.base[group] + rng.random(len(group)) * self.total[group]
        position = np.searchsorted(self.cumulative, target, side="right")
        return self.order[np.clip(position, self.start[group], self.end[group] - 1)]

    def members(self, group: int) -> np.ndarray:
        """Track ids of one group."""
        return self.order[self.start[group]:self.end[group]]


def _playlists(rng: np.random.Generator, cfg: CatalogConfig, h: _Hierarchy) -> list[np.ndarray]:
    """Generate all playlists in parallel, one position per step; returns int64 arrays."""
    lengths = _lengths(rng, cfg)  # (playlists,)
    by_subgenre = _GroupSampler(h.track_subgenre, h.track_weight, cfg.num_subgenres)
    by_artist = _GroupSampler(h.track_artist, h.track_weight, cfg.num_artists)
    current = rng.choice(cfg.num_subgenres, cfg.num_playlists, p=h.subgenre_weight)  # (playlists,) home
    tracks = np.full((cfg.num_playlists, int(lengths.max())), -1, dtype=np.int64)  # (playlists, max_len)
    for step in range(tracks.shape[1]):
        rows = np.flatnonzero(lengths > step)
        same_artist = np.zeros(len(rows), dtype=bool)
        if step > 0:
            switch = rng.random(len(rows)) < cfg.switch_subgenre_prob
            current[rows[switch]] = _related_subgenre(rng, current[rows[switch]], cfg.subgenres_per_genre)
            same_artist = ~switch & (rng.random(len(rows)) < cfg.same_artist_prob)
        history = tracks[rows, :step]  # (rows, step)
        tracks[rows, step] = _next_tracks(rng, history, current[rows], same_artist, by_subgenre, by_artist, h)
    filled = np.arange(tracks.shape[1]) < lengths[:, None]
    return np.split(tracks[filled], np.cumsum(lengths)[:-1])


def _lengths(rng: np.random.Generator, cfg: CatalogConfig) -> np.ndarray:
    """(playlists,) int64 geometric lengths (mean ~ min + span / 3) clipped to [min_length, max_length]."""
    mean_extra = (cfg.max_length - cfg.min_length) / 3.0
    extra = rng.geometric(1.0 / (1.0 + mean_extra), cfg.num_playlists) - 1
    return np.minimum(cfg.min_length + extra, cfg.max_length).astype(np.int64)


def _related_subgenre(rng: np.random.Generator, subgenre: np.ndarray, per_genre: int) -> np.ndarray:
    """(n,) sub-genres -> (n,) a different sub-genre of the same genre, uniformly (same if the only one)."""
    if per_genre == 1:
        return subgenre
    local = (subgenre % per_genre + rng.integers(1, per_genre, len(subgenre))) % per_genre
    return subgenre // per_genre * per_genre + local


def _next_tracks(rng: np.random.Generator, history: np.ndarray, subgenre: np.ndarray, same_artist: np.ndarray,
                 by_subgenre: _GroupSampler, by_artist: _GroupSampler, h: _Hierarchy) -> np.ndarray:
    """(rows,) next track ids not in ``history`` (rows, step): the previous artist or the sub-genre."""
    chosen = np.full(len(subgenre), -1, dtype=np.int64)
    pending = same_artist.copy()  # rows still trying the previous track's artist
    previous_artist = h.track_artist[history[:, -1]] if history.shape[1] else None
    for _ in range(_ARTIST_TRIES if history.shape[1] else 0):
        index = np.flatnonzero(pending)
        if not len(index):
            break
        chosen[index] = by_artist.draw(rng, previous_artist[index])
        pending[index] = _repeats(history[index], chosen[index])
    pending |= ~same_artist  # from here on: rows drawing from their current sub-genre
    for _ in range(_SUBGENRE_TRIES):
        index = np.flatnonzero(pending)
        if not len(index):
            break
        chosen[index] = by_subgenre.draw(rng, subgenre[index])
        pending[index] = _repeats(history[index], chosen[index])
    for row in np.flatnonzero(pending):  # rare: the popular tracks of a small sub-genre are used up
        chosen[row] = _unused_track(rng, history[row], by_subgenre.members(subgenre[row]), len(h.track_artist))
    return chosen


def _repeats(history: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """(rows, step) history, (rows,) candidates -> (rows,) bool: candidate already in the playlist."""
    return (history == candidate[:, None]).any(axis=1)


def _unused_track(rng: np.random.Generator, history: np.ndarray, members: np.ndarray, num_tracks: int) -> int:
    """A uniform track of ``members`` not in ``history``, else any unused track of the catalog."""
    free = np.setdiff1d(members, history)
    if not len(free):
        free = np.setdiff1d(np.arange(num_tracks), history)  # non-empty: max_length <= num_tracks
    return int(rng.choice(free))


# --- radio feedback -------------------------------------------------------------------------------


def _radio_feedback(cfg: CatalogConfig, h: _Hierarchy, sequences: list[np.ndarray]) -> tuple[list, list]:
    """Replace some positions by stray tracks, then draw played (1) / skipped (0) for every track.

    The session's taste at a position is the sub-genre of the track the playlist generator chose there. A
    stray replaces it only when the stray is new to the session (else the position keeps its track). The skip
    log-odds are logit(fit_skip_prob) for a track of the taste's sub-genre, logit(misfit_skip_prob) otherwise,
    minus appeal x the track's hidden N(0, 1) appeal. Returns int64 sequences and aligned int8 feedback.
    """
    skips, num_tracks = cfg.skips, cfg.num_tracks
    rng = np.random.default_rng([cfg.seed, _SKIP_STREAM])
    appeal = rng.standard_normal(num_tracks)  # (tracks,)
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    session = np.repeat(np.arange(len(sequences)), lengths)  # (positions,) session of each position
    original = np.concatenate(sequences)  # (positions,)
    first = np.r_[0, np.cumsum(lengths)[:-1]]  # (sessions,) flat index of each session's first position
    stray = rng.random(len(original)) < skips.stray_prob
    stray[first] = False  # the first track sets the taste
    candidate = rng.choice(num_tracks, size=len(original), p=_track_share(h))  # (positions,)
    stray &= _new_to_session(session, original, candidate, stray, num_tracks)
    tracks = np.where(stray, candidate, original)
    fit = h.track_subgenre[tracks] == h.track_subgenre[original]  # (positions,)
    base = np.clip(np.where(fit, skips.fit_skip_prob, skips.misfit_skip_prob), 1e-9, 1 - 1e-9)
    log_odds = np.log(base / (1 - base)) - skips.appeal * appeal[tracks]
    skipped = rng.random(len(tracks)) < 1.0 / (1.0 + np.exp(-log_odds))
    split = np.cumsum(lengths)[:-1]
    return np.split(tracks.astype(np.int64), split), np.split((~skipped).astype(np.int8), split)


def _track_share(h: _Hierarchy) -> np.ndarray:
    """(tracks,) float64 probability of each track in a popularity-weighted draw from the whole catalog."""
    sub_total = np.bincount(h.track_subgenre, weights=h.track_weight, minlength=len(h.subgenre_weight))
    share = h.subgenre_weight[h.track_subgenre] * h.track_weight / sub_total[h.track_subgenre]
    return share / share.sum()


def _new_to_session(session: np.ndarray, original: np.ndarray, candidate: np.ndarray, stray: np.ndarray,
                    num_tracks: int) -> np.ndarray:
    """(positions,) bool: the candidate is in neither the session's tracks nor an earlier stray of it."""
    original_keys = session * num_tracks + original  # (positions,) one key per (session, track)
    candidate_keys = np.where(stray, session * num_tracks + candidate, -1 - np.arange(len(candidate)))
    _, first_use = np.unique(candidate_keys, return_index=True)
    unique = np.zeros(len(candidate), dtype=bool)
    unique[first_use] = True  # the first stray of a track in a session; later ones would repeat it
    return unique & ~np.isin(candidate_keys, original_keys)
