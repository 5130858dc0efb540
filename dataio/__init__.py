"""Imports and exports of preference data (files in, datasets out): above quality, so a dataset card states the quality app's agreement."""
