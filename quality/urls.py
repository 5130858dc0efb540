from django.urls import path

from . import views

urlpatterns = [
    path("p/<slug:slug>/quality/", views.dashboard, name="quality-dashboard"),
    path("p/<slug:slug>/quality/status/", views.report_status, name="quality-status"),
    path("p/<slug:slug>/quality/refresh/", views.report_refresh, name="quality-refresh"),
    path("p/<slug:slug>/quality/annotators/<int:user_id>/pause/", views.annotator_pause, name="quality-pause"),
    path("p/<slug:slug>/quality/annotators/<int:user_id>/resume/", views.annotator_resume, name="quality-resume"),
    path("p/<slug:slug>/quality/audit/", views.audit_run, name="quality-audit"),
    path("p/<slug:slug>/quality/review/", views.review_queue, name="quality-review"),
    path("p/<slug:slug>/quality/review/refresh/", views.review_refresh, name="quality-review-refresh"),
    path("p/<slug:slug>/quality/review/<int:item_id>/", views.review_item, name="quality-review-item"),
    path("p/<slug:slug>/quality/review/<int:item_id>/adjudicate/", views.review_adjudicate,
         name="quality-review-adjudicate"),
    path("p/<slug:slug>/quality/review/<int:item_id>/more-labels/", views.review_more_labels,
         name="quality-review-more-labels"),
    path("p/<slug:slug>/quality/review/<int:item_id>/ambiguous/", views.review_ambiguous,
         name="quality-review-ambiguous"),
]
