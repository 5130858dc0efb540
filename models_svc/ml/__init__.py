"""Reward-model code in plain torch/transformers: encoders, heads, losses,
training loops and scoring; and, in plain numpy, the acquisition functions and the
source leaderboard.

Nothing under ``models_svc.ml`` imports Django, so it can be tested, benchmarked
and run on a GPU box on its own; the Django side (``models_svc.services``) turns
database rows into the plain Python inputs these functions take. A test imports
every module here in a fresh interpreter and fails if ``django`` was loaded.
``presets``, ``config``, ``acquisition`` and ``leaderboard`` import no torch
either: the web process reads them (another layout test loads the URLconf and fails
if torch or transformers was loaded).
"""
