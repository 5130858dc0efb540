from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotate import urls as annotate_urls

from .auth import TokenView
from .health import healthz

handler404 = "preflab.errors.page_not_found"
handler500 = "preflab.errors.server_error"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    # first: the annotator's hot routes (no other pattern matches them)
    path("", include(annotate_urls.queue_api_urlpatterns)),
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/auth/token/", TokenView.as_view(), name="api-token"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("rubrics.urls")),
    path("", include("models_svc.urls")),
    path("", include("quality.urls")),
    path("", include("dataio.urls")),
    path("", include("annotate.urls")),
]
