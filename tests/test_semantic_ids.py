"""Semantic-ID table (tie-break, tokens, lookup, frame, save/load), vocabulary and prefix trie, by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raysid.semantic_ids.table import SemanticIds
from raysid.semantic_ids.trie import PrefixTrie
from raysid.semantic_ids.vocab import Vocabulary

torch.set_num_threads(1)

# Items 0, 2 and 3 collide on (1, 2); items 1 and 4 on (0, 0); item 5 is alone.
CODES = np.array([[1, 2], [0, 0], [1, 2], [1, 2], [0, 0], [3, 1]])


@pytest.fixture
def sids() -> SemanticIds:
    return SemanticIds.from_codes(CODES, ("s1", "text1"), (4, 3))


def test_tie_break_numbers_each_collision_group_in_item_order(sids):
    assert sids.position_names == ("s1", "text1", "t")
    assert sids.codebook_sizes == (4, 3, 3)  # the largest group has 3 items
    np.testing.assert_array_equal(sids.codes[:, 2], [0, 0, 1, 2, 1, 0])
    assert sids.is_unique()
    assert sids.num_items == 6 and sids.num_positions == 3


def test_without_tie_break_duplicates_are_kept():
    plain = SemanticIds.from_codes(CODES, ("s1", "text1"), (4, 3), tie_break=False)
    assert plain.num_positions == 2 and not plain.is_unique()
    with pytest.raises(ValueError, match="unique"):
        plain.lookup(CODES[:1])


def test_tokens_are_prefixed_strings(sids):
    assert sids.tokens(3) == ["<s1.1>", "<text1.2>", "<t.2>"]
    assert sids.tokens(5) == ["<s1.3>", "<text1.1>", "<t.0>"]


def test_lookup_maps_rows_to_items_and_unknown_rows_to_minus_one(sids):
    rows = np.array([[1, 2, 2], [0, 0, 1], [3, 1, 0], [3, 1, 1], [9, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(sids.lookup(rows), [3, 4, 5, -1, -1, 1])
    np.testing.assert_array_equal(sids.lookup(sids.codes), np.arange(6))


def test_invalid_codes_are_rejected():
    with pytest.raises(ValueError, match="outside"):
        SemanticIds.from_codes(np.array([[0, 5]]), ("s1", "s2"), (2, 2))
    with pytest.raises(ValueError, match="reserved"):
        SemanticIds.from_codes(np.array([[0, 1]]), ("s1", "t"), (2, 2))


def test_frame_and_save_load_round_trip(sids, tmp_path):
    frame = sids.to_frame()
    assert frame.columns == ["item_id", "sid", "s1", "text1", "t"]
    assert frame["sid"][2] == "<s1.1><text1.2><t.1>"
    assert frame["t"].to_list() == [0, 0, 1, 2, 1, 0]
    sids.save(tmp_path)
    loaded = SemanticIds.load(tmp_path)
    np.testing.assert_array_equal(loaded.codes, sids.codes)
    assert (loaded.position_names, loaded.codebook_sizes) == (sids.position_names, sids.codebook_sizes)


def test_vocabulary_ranges_and_round_trip(sids):
    vocab = Vocabulary(sids)
    np.testing.assert_array_equal(vocab.offsets, [2, 6, 9])  # pad, eos, then 4 + 3 + 3 tokens
    assert vocab.size == 12 and len(vocab.token_strings()) == 12
    strings = vocab.token_strings()
    assert strings[:3] == ["<pad>", "<eos>", "<s1.0>"] and strings[6] == "<text1.0>" and strings[11] == "<t.2>"
    tokens = vocab.encode(np.array([3, 5]))
    np.testing.assert_array_equal(tokens, [[3, 8, 11], [5, 7, 9]])
    assert [strings[t] for t in tokens[0]] == sids.tokens(3)
    np.testing.assert_array_equal(vocab.decode(tokens), sids.codes[[3, 5]])
    with pytest.raises(ValueError, match="not a token of position 'text1'"):
        vocab.decode(np.array([[3, 3, 9]]))


def test_trie_children_by_hand():
    # root -> 2 -> 3 -> 4 (item 1)      root -> 5 -> 6 -> 1 (item 3)
    #           2 -> 4 -> 4 (item 4)              5 -> 7 -> 8 (item 2), 9 (item 0)
    tokens = np.array([[5, 7, 9], [2, 3, 4], [5, 7, 8], [5, 6, 1], [2, 4, 4]])
    trie = PrefixTrie(tokens)
    assert trie.num_nodes == [1, 2, 4, 5]
    allowed, nodes, valid = trie.children(0, torch.tensor([0]))
    assert allowed.tolist() == [[2, 5]] and nodes.tolist() == [[0, 1]] and valid.all()
    allowed, nodes, valid = trie.children(1, torch.tensor([1, 0]))  # prefixes (5,) and (2,)
    assert allowed.tolist() == [[6, 7], [3, 4]] and nodes.tolist() == [[2, 3], [0, 1]]
    allowed, nodes, valid = trie.children(2, torch.tensor([3, 0]))  # prefixes (5, 7) and (2, 3)
    assert valid.tolist() == [[True, True], [True, False]]
    assert allowed[valid].tolist() == [8, 9, 4]
    assert trie.items(nodes[valid]).tolist() == [2, 0, 1]


def test_trie_walk_recovers_every_item_and_rejects_duplicates(sids):
    vocab = Vocabulary(sids)
    trie = PrefixTrie.from_semantic_ids(sids, vocab)
    tokens = torch.as_tensor(vocab.encode(np.arange(sids.num_items)))
    nodes = torch.zeros(sids.num_items, dtype=torch.int64)
    for depth in range(trie.depth):
        allowed, children, valid = trie.children(depth, nodes)
        match = (allowed == tokens[:, depth : depth + 1]) & valid  # exactly one slot per item
        assert (match.sum(dim=1) == 1).all()
        nodes = children[match]
    assert trie.items(nodes).tolist() == list(range(sids.num_items))
    with pytest.raises(ValueError, match="unique"):
        PrefixTrie(np.array([[1, 2], [3, 4], [1, 2]]))
