"""The tokenizer benchmark: rows with positive rates, the RQ-VAE FLOP count, a sane matmul share."""

import math

from raysid.bench.tokenizers import format_table, matmul_share, rqvae_step_flops, tokenizer_throughput


def test_throughput_rows_are_positive():
    rows = tokenizer_throughput(num_tracks=2000, kinds=["kmeans", "rqvae"], threads=1, epochs=1)
    assert [row["kind"] for row in rows] == ["kmeans", "rqvae"]
    units = {row["kind"]: row["fit_unit"] for row in rows}
    assert units == {"kmeans": "items/s", "rqvae": "item-epochs/s"}
    for row in rows:
        assert row["train_items"] > 0 and row["fit_s"] > 0 and row["encode_s"] > 0
        assert row["fit_rate"] > 0 and row["encode_items_per_s"] > 0
        assert math.isfinite(row["peak_rss_mib"])
    assert "kmeans" in format_table(rows) and "rqvae" in format_table(rows)


def test_rqvae_step_flops_by_hand():
    # input 4, hidden (8,), d_z 2, codebooks (3, 5), batch 10.
    # Linear layers: encoder 4x8, 8x2; decoder 2x8, 8x4 -> in*out sum 32 + 16 + 16 + 32 = 96
    # forward 2*10*96 = 1920, times 3 for forward + backward = 5760
    # distances: 2*10*3*2 + 2*10*5*2 = 120 + 200 = 320
    assert rqvae_step_flops(4, (8,), 2, (3, 5), 10) == 6080


def test_matmul_share_is_plausible():
    share = matmul_share(threads=1)
    assert share["matmul_gflops"] > 0 and share["rqvae_gflops"] > 0
    assert 0 < share["share"] <= 1.5
