"""Reward-model code in plain torch/transformers: encoders, heads, losses,
training loops, scoring and acquisition functions.

Nothing under ``models_svc.ml`` imports Django, so it can be tested, benchmarked
and run on a GPU box on its own; the Django side (``models_svc.services``) turns
database rows into the plain Python inputs these functions take. A test imports
every module here in a fresh interpreter and fails if ``django`` was loaded.
"""
