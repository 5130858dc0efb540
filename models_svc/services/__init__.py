"""The write side of models_svc, one module per concern (DESIGN §10):

- ``lifecycle``: runs (enqueue, claim, heartbeat, cancel, fail, sweep, the worker
  body), versions (record, promote, roll back), automatic refresh and rescoring;
- ``training_data``: which labels a run sees, as plain examples for ``models_svc.ml``;
- ``scoring``: a stored version loaded once per process, and rewards from it;
- ``project_settings``: a project's reward-model and selection settings.

Nothing here imports torch at module level: the web process imports these modules,
and the worker-only paths import ``models_svc.ml`` inside the functions that need it.
"""
