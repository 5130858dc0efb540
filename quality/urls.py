from django.urls import path

from . import views

urlpatterns = [
    path("p/<slug:slug>/quality/", views.dashboard, name="quality-dashboard"),
    path("p/<slug:slug>/quality/status/", views.report_status, name="quality-status"),
    path("p/<slug:slug>/quality/refresh/", views.report_refresh, name="quality-refresh"),
    path("p/<slug:slug>/quality/annotators/<int:user_id>/pause/", views.annotator_pause, name="quality-pause"),
    path("p/<slug:slug>/quality/annotators/<int:user_id>/resume/", views.annotator_resume, name="quality-resume"),
]
