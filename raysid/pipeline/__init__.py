"""The pipeline: the stages of one trial in order, and the only code that touches the artifact store.

``trial.py`` runs a trial (``run_trial``, ``prepare``), ``dataset.py`` is the data stage (the dataset, its
one split and its modalities), ``keys.py`` derives every artifact's key from the trial's config
(``raysid.trial_config``). Import from those modules; this package file imports nothing.
"""
