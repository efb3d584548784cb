"""Every benchmark ``raysid bench`` runs, in one package (one-off scripts live in ``benchmarks/``).

- ``overhead``: what the sweep machinery costs on top of the trials' own work (``raysid bench overhead``);
- ``tokenizers``: tokenizer training throughput and its share of the matmul rate (``raysid bench tokenizers``);
- ``decoding``: raysid's constrained beam search against transformers' ``generate`` (``raysid bench decoding``);
- ``training``: recommender training throughput, optionally on Ray Train workers (``raysid bench training``);
- ``peers``: raysid's models beside RecBole's SASRec and cornac's TIGER (``raysid bench peers``).

None of it is stage code: the package is left out of the code version (``raysid.cache_manifest.CODE_EXCLUDED``).
"""
