from django.urls import path

from . import api, views

V = "rubrics/<slug:slug>/v/<int:number>/"

urlpatterns = [
    path("rubrics/", views.rubric_list, name="rubric-list"),
    path("rubrics/new/", views.rubric_create, name="rubric-create"),
    path("rubrics/import/", views.rubric_import, name="rubric-import"),
    path("rubrics/<slug:slug>/", views.rubric_detail, name="rubric-detail"),
    path("rubrics/<slug:slug>/diff/", views.rubric_diff, name="rubric-diff"),
    path(V + "edit/", views.version_edit, name="rubric-edit"),
    path(V + "settings/", views.version_settings, name="rubric-settings"),
    path(V + "criteria/", views.criterion_add, name="rubric-criterion-add"),
    path(V + "criteria/form/", views.criterion_add_form, name="rubric-criterion-add-form"),
    path(V + "criteria/<str:key>/", views.criterion_edit, name="rubric-criterion-edit"),
    path(V + "criteria/<str:key>/delete/", views.criterion_delete, name="rubric-criterion-delete"),
    path(V + "criteria/<str:key>/move/", views.criterion_move, name="rubric-criterion-move"),
    path(V + "publish/", views.version_publish, name="rubric-publish"),
    path(V + "new-draft/", views.version_new_draft, name="rubric-new-draft"),
    path(V + "discard/", views.version_discard, name="rubric-discard"),
    path(V + "clone/", views.version_clone, name="rubric-clone"),
    path(V + "export.<str:fmt>", views.version_export, name="rubric-export"),
    path("api/v1/rubrics/", api.rubric_list, name="api-rubric-list"),
    path("api/v1/rubrics/import/", api.rubric_import, name="api-rubric-import"),
    path("api/v1/rubrics/<slug:slug>/", api.rubric_detail, name="api-rubric-detail"),
    path("api/v1/rubrics/<slug:slug>/versions/<int:number>/", api.version_detail, name="api-rubric-version"),
    path("api/v1/rubrics/<slug:slug>/versions/<int:number>/publish/", api.version_publish, name="api-rubric-publish"),
]
