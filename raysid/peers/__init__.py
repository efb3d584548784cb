"""Peer implementations that raysid's models are measured against (``raysid bench peers``).

The peers run in a virtual environment of their own (``venv.py``), installed from ``requirements.txt``,
because their pins clash with raysid's (RecBole 1.2.1 declares ``ray<=2.6.3``). ``recbole_runner.py`` is the
script that environment runs: it imports nothing from raysid.
"""
