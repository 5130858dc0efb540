from django.urls import path

from . import api, views

urlpatterns = [
    path("p/<slug:slug>/models/", views.model_page, name="model-page"),
    path("p/<slug:slug>/models/runs/", views.runs_partial, name="model-runs"),
    path("p/<slug:slug>/models/retrain/", views.retrain, name="model-retrain"),
    path("p/<slug:slug>/models/settings/", views.settings_update, name="model-settings"),
    path("p/<slug:slug>/models/runs/<int:run_id>/cancel/", views.run_cancel, name="model-run-cancel"),
    path("p/<slug:slug>/models/v/<int:number>/promote/", views.version_promote, name="model-promote"),
    path("p/<slug:slug>/models/rollback/", views.version_rollback, name="model-rollback"),
    path("p/<slug:slug>/selection/", views.selection_page, name="model-selection"),
    path("p/<slug:slug>/selection/settings/", views.selection_update, name="model-selection-update"),
    path("p/<slug:slug>/selection/rescore/", views.rescore_now, name="model-rescore"),
    path("api/v1/projects/<slug:slug>/score/", api.score, name="api-score"),
    path("api/v1/projects/<slug:slug>/score/jobs/<int:job_id>/", api.score_job, name="api-score-job"),
    path("api/v1/projects/<slug:slug>/score/jobs/<int:job_id>/cancel/", api.score_job_cancel,
         name="api-score-job-cancel"),
    path("api/v1/projects/<slug:slug>/models/", api.model_list, name="api-models"),
    path("api/v1/projects/<slug:slug>/models/runs/", api.run_list, name="api-model-runs"),
    path("api/v1/projects/<slug:slug>/models/runs/<int:run_id>/", api.run_detail, name="api-model-run"),
]
