"""Peer implementations that raysid's models are measured against (``raysid bench peers``).

``sasrec.py`` is the comparison of raysid's SASRec with RecBole's; ``tiger.py`` the generative one (raysid's
RQ-VAE + T5 against cornac's TIGER).

Each peer runs in a virtual environment of its own (``venv.py``): RecBole 1.2.1 (SASRec) from
``requirements.txt``, because its pins clash with raysid's (it declares ``ray<=2.6.3``), and cornac 3.0.1
(TIGER) from ``requirements-cornac.txt``, kept apart from RecBole's so neither peer's pins move the other's.
``recbole_runner.py`` and ``cornac_runner.py`` are the scripts those environments run: they import nothing
from raysid.
"""
