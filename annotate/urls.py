from django.urls import path

from . import api, project_views, projects_api, rubric_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("p/<slug:slug>/", views.project_detail, name="project-detail"),
    # running a project (project_views) and the account pages every user has
    path("projects/new/", project_views.project_new, name="project-new"),
    path("markdown/preview/", project_views.markdown_preview, name="markdown-preview"),
    path("p/<slug:slug>/settings/", project_views.project_settings, name="project-settings"),
    path("p/<slug:slug>/members/", project_views.members, name="members"),
    path("p/<slug:slug>/members/add/", project_views.member_add, name="member-add"),
    path("p/<slug:slug>/members/create/", project_views.member_create, name="member-create"),
    path("p/<slug:slug>/members/<int:user_id>/role/", project_views.member_role, name="member-role"),
    path("p/<slug:slug>/members/<int:user_id>/remove/", project_views.member_remove, name="member-remove"),
    path("account/password/", project_views.PasswordChangeView.as_view(), name="password-change"),
    path("invite/<uidb64>/<token>/", project_views.InviteAcceptView.as_view(), name="invite-accept"),
    path("api/v1/projects/", projects_api.project_list, name="api-project-list"),
    path("api/v1/projects/<slug:slug>/", projects_api.project_detail, name="api-project-detail"),
    path("api/v1/projects/<slug:slug>/members/", projects_api.member_list, name="api-project-members"),
    path("api/v1/projects/<slug:slug>/members/<str:username>/", projects_api.member_detail,
         name="api-project-member"),
    path("p/<slug:slug>/work/<str:kind>/", views.work, name="work"),
    path("p/<slug:slug>/tasks/<int:assignment_id>/submit/", views.task_submit, name="task-submit"),
    path("p/<slug:slug>/tasks/<int:assignment_id>/skip/", views.task_skip, name="task-skip"),
    path("p/<slug:slug>/progress/", views.progress, name="progress"),
    path("p/<slug:slug>/mine/", views.my_labels, name="my-labels"),
    path("p/<slug:slug>/rubric/", rubric_views.project_pin, name="project-pin-rubric"),
    path("p/<slug:slug>/derived/", rubric_views.project_derived, name="project-derived"),
    path("rubrics/<slug:slug>/v/<int:number>/pin/", rubric_views.version_pin, name="rubric-pin"),
]

# The annotation queue's API, the requests an annotator's client sends all day:
# preflab/urls.py lists these first, so resolving them does not try the ~100
# patterns of every app before (about a tenth of such a request's Python time
# under the profiler, benchmarks/profile_requests.py).
queue_api_urlpatterns = [
    path("api/v1/projects/<slug:slug>/tasks/next/", api.task_next, name="api-task-next"),
    path("api/v1/tasks/<int:assignment_id>/", api.task_detail, name="api-task-detail"),
    path("api/v1/tasks/<int:assignment_id>/submit/", api.task_submit, name="api-task-submit"),
    path("api/v1/tasks/<int:assignment_id>/skip/", api.task_skip, name="api-task-skip"),
]
