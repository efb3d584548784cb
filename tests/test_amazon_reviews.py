"""Amazon Reviews 2018 files (5-core reviews + metadata JSON lines) against hand-computed sequences and counts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from raysid.data.importers import import_dataset
from raysid.data.importers.amazon_reviews import core_filter
from raysid.data.importers.base import DataImportError
from raysid.data.splits import leave_one_out
from raysid.features.text import item_texts

AMAZON_TEXT = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-text"

# (user, item, time) in file order. Times put u1 out of file order; u2's b and a tie (file order: b first).
# 3-core by hand: round 1 counts a3 b3 c3 d3 e2 f1 -> e, f go; u4 and u5 keep only d (1 < 3) and go;
# round 2: d has 1 (u3) -> goes; round 3: a3 b3 c3, every user 3 -> stop. Kept: u1 a b c, u2 c b a, u3 a b c.
REVIEWS = [("u1", "a", 10), ("u1", "c", 30), ("u2", "b", 5), ("u1", "b", 20), ("u2", "a", 5), ("u2", "c", 1),
           ("u3", "a", 1), ("u3", "b", 2), ("u3", "c", 3), ("u4", "d", 1), ("u4", "e", 2), ("u4", "f", 3),
           ("u5", "d", 1), ("u5", "e", 2)]
PYTHON_LITERAL = "{'reviewerID': 'u3', 'asin': 'd', 'unixReviewTime': 4, 'overall': 5.0, 'vote': '2'}"


def _review(user: str, item: str, time: int) -> str:
    return json.dumps({"overall": 4.0, "reviewerID": user, "asin": item, "unixReviewTime": time, "reviewText": "ok"})


def _write(tmp_path: Path) -> tuple[Path, Path]:
    lines = [_review(*r) for r in REVIEWS]
    lines.insert(9, PYTHON_LITERAL)  # u3's d (time 4), written as a Python dict
    lines.insert(3, _review("u1", "c", 99))  # line 4: u1 reviews c again: left out
    lines += ["not a review", json.dumps({"reviewerID": "u9", "asin": "z"}), ""]  # lines 17, 18 skipped
    reviews = tmp_path / "Office_Products_5.json.gz"
    with gzip.open(reviews, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    metadata = tmp_path / "meta_Office_Products.json"
    metadata.write_text("\n".join([
        json.dumps({"asin": "a", "title": "Alpha", "brand": "Acme", "category": ["Office", "Paper"],
                    "description": ["Line one", "Line two"]}),
        "{'asin': 'b', 'title': 'Beta', 'categories': [['Office', 'Pens'], ['Office']], 'description': 'Blue ink.'}",
        json.dumps({"asin": "x", "title": "Not kept"}),
        "[1, 2]",
    ]) + "\n")
    return reviews, metadata


def test_reviews_become_chronological_core_filtered_sequences_with_item_text(tmp_path):
    reviews, metadata = _write(tmp_path)
    imported = import_dataset("amazon-reviews", reviews, "office", metadata=metadata, core=3)
    items = imported.dataset.items
    assert items["asin"].to_list() == ["a", "b", "c"]  # first sight: u1's a (10), b (20), c (30)
    assert [s.tolist() for s in imported.dataset.sequences] == [[0, 1, 2], [2, 1, 0], [0, 1, 2]]
    assert imported.sequence_info["user"].to_list() == ["u1", "u2", "u3"]
    assert imported.counts == {"sequences": 3, "items": 3, "interactions": 9}
    filtered = imported.dataset.meta["filter"]
    # before the filter: 15 reviews (14 + the Python-literal line), 6 items, 5 users
    assert (filtered["users_dropped"], filtered["items_dropped"], filtered["interactions_dropped"]) == (2, 3, 6)
    assert filtered["duplicate_reviews"] == 1
    assert [str(p) for p in imported.log.problems] == [
        f"{reviews}:17: not a JSON object (nor a Python dict literal)",
        f"{reviews}:18: review without unixReviewTime",
        f"{metadata}:4: not a metadata object with an asin"]
    assert "3-core filter dropped 2 users, 3 items, 6 interactions" in imported.notes[0]
    template = imported.dataset.meta["text_template"]
    assert template == "{title}. {brand}. {categories}. {description}"
    assert item_texts(items, template) == ["Alpha. Acme. Office, Paper. Line one Line two",
                                          "Beta. . Office, Pens. Blue ink.", ". . ."]
    assert imported.dataset.meta["items_without_text"] == 1
    split = leave_one_out(imported.dataset.sequences)  # the rest of raysid's protocol: last test, second-to-last valid
    assert split.test.targets.tolist() == [2, 0, 2] and split.valid.targets.tolist() == [1, 1, 1]


def test_histories_keep_the_most_recent_items_and_the_default_core_is_five(tmp_path):
    reviews, _ = _write(tmp_path)
    capped = import_dataset("amazon-reviews", reviews, "office", core=3, max_history=1)
    assert [s.tolist() for s in capped.dataset.sequences] == [[0, 1], [0, 2], [0, 1]]  # items b c | b a | b c
    assert capped.dataset.items["asin"].to_list() == ["b", "c", "a"]
    assert capped.dataset.meta["filter"]["interactions_truncated"] == 3
    assert "text_template" in capped.dataset.meta and capped.dataset.meta["text_template"] == ""
    folder = import_dataset("amazon-reviews", tmp_path, "office", core=3)  # the folder's meta_ file is the metadata
    assert [s.tolist() for s in folder.dataset.sequences] == [[0, 1, 2], [2, 1, 0], [0, 1, 2]]
    assert folder.dataset.items["title"].to_list() == ["Alpha", "Beta", None]
    with pytest.raises(DataImportError, match="the 5-core is empty"):
        import_dataset("amazon-reviews", reviews, "office")


def test_core_filter_repeats_until_every_user_and_item_has_k():
    kept, dropped = core_filter({"u1": ["a", "b"], "u2": ["a", "b"], "u3": ["a", "c"]}, 2)
    # round 1: c has 1 -> u3 keeps only a (1 < 2) and goes; round 2: a 2, b 2 -> stop
    assert kept == {"u1": ["a", "b"], "u2": ["a", "b"]}
    assert dropped == {"users_dropped": 1, "items_dropped": 1, "interactions_dropped": 2}


def test_cli_import_prints_the_filter_counts(tmp_path):
    from cli.main import app

    reviews, metadata = _write(tmp_path)
    result = CliRunner().invoke(app, ["data", "import", "amazon-reviews", str(reviews), "--name", "office", "--core", "3",
                                      "--metadata", str(metadata), "--root", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert "3 sequences, 3 items, 9 interactions" in result.output
    assert "3-core filter dropped 2 users, 3 items, 6 interactions; 1 repeated reviews left out" in result.output
    assert "3 unreadable rows skipped" in result.output


@pytest.mark.skipif(not AMAZON_TEXT.exists(), reason="../shared/data/amazon-text is not on this machine")
@pytest.mark.parametrize("category", ["Office_Products", "Industrial_and_Scientific"])
def test_amazon_text_item_files_read_as_the_text_modality(category):
    imported = import_dataset("amazon", AMAZON_TEXT, category, category=category)
    source = json.loads((AMAZON_TEXT / "index" / f"{category}.item.json").read_text())
    texts = item_texts(imported.dataset.items, imported.dataset.meta["text_template"])
    assert len(texts) == len(source) and imported.dataset.meta["items_without_text"] == 0
    first = next(iter(source))
    assert texts[0].startswith(source[first]["title"] + ". ")
    assert sum(1 for t in texts if len(t) > 20) > 0.9 * len(texts)
