from django.urls import path

from . import api, views

urlpatterns = [
    path("p/<slug:slug>/import/", views.import_upload, name="import-upload"),
    path("p/<slug:slug>/imports/", views.import_jobs_partial, name="import-jobs"),
    path("p/<slug:slug>/imports/<int:job_id>/cancel/", views.import_cancel, name="import-cancel"),
    path("p/<slug:slug>/exports/", views.exports_page, name="exports"),
    path("p/<slug:slug>/exports/jobs/", views.export_jobs_partial, name="export-jobs"),
    path("p/<slug:slug>/exports/<int:job_id>/", views.export_detail, name="export-detail"),
    path("p/<slug:slug>/exports/<int:job_id>/cancel/", views.export_cancel, name="export-cancel"),
    path("p/<slug:slug>/exports/<int:job_id>/download/", views.export_file, {"which": "data"}, name="export-download"),
    path("p/<slug:slug>/exports/<int:job_id>/card/", views.export_file, {"which": "card"}, name="export-card"),
    path("api/v1/projects/<slug:slug>/imports/", api.project_imports, name="api-project-imports"),
    path("api/v1/projects/<slug:slug>/imports/<int:job_id>/", api.import_detail, name="api-import-detail"),
    path("api/v1/projects/<slug:slug>/exports/", api.project_exports, name="api-project-exports"),
    path("api/v1/projects/<slug:slug>/exports/<int:job_id>/", api.export_detail, name="api-export-detail"),
    path("api/v1/projects/<slug:slug>/exports/<int:job_id>/download/", api.export_download,
         name="api-export-download"),
    path("api/v1/projects/<slug:slug>/exports/<int:job_id>/card/", api.export_card, name="api-export-card"),
]
