from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from decodelab.common import views as common_views
from decodelab.users.ratelimit import login_rate_limited

urlpatterns = [
    path("", common_views.home, name="home"),
    path("login/", login_rate_limited(auth_views.LoginView.as_view(redirect_authenticated_user=True)), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("comparisons/", include("decodelab.runs.urls")),
    path("experiments/", include("decodelab.experiments.urls")),
    path("rate/", include("decodelab.ratings.urls")),
    path("api/v1/", include("decodelab.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/login/", login_rate_limited(admin.site.login)),  # the admin's own login, rate-limited too
    path("admin/", admin.site.urls),
]
handler404 = "decodelab.api.exceptions.page_not_found"  # JSON under /api/
