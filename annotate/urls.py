from django.urls import path

from . import api, rubric_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("p/<slug:slug>/", views.project_detail, name="project-detail"),
    path("p/<slug:slug>/work/<str:kind>/", views.work, name="work"),
    path("p/<slug:slug>/tasks/<int:assignment_id>/submit/", views.task_submit, name="task-submit"),
    path("p/<slug:slug>/tasks/<int:assignment_id>/skip/", views.task_skip, name="task-skip"),
    path("p/<slug:slug>/progress/", views.progress, name="progress"),
    path("p/<slug:slug>/mine/", views.my_labels, name="my-labels"),
    path("p/<slug:slug>/rubric/", rubric_views.project_pin, name="project-pin-rubric"),
    path("p/<slug:slug>/derived/", rubric_views.project_derived, name="project-derived"),
    path("rubrics/<slug:slug>/v/<int:number>/pin/", rubric_views.version_pin, name="rubric-pin"),
    path("api/v1/projects/", api.project_list, name="api-project-list"),
    path("api/v1/projects/<slug:slug>/", api.project_detail, name="api-project-detail"),
    path("api/v1/projects/<slug:slug>/tasks/next/", api.task_next, name="api-task-next"),
    path("api/v1/tasks/<int:assignment_id>/", api.task_detail, name="api-task-detail"),
    path("api/v1/tasks/<int:assignment_id>/submit/", api.task_submit, name="api-task-submit"),
    path("api/v1/tasks/<int:assignment_id>/skip/", api.task_skip, name="api-task-skip"),
]
