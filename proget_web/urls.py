"""URL map of the web node (the contract paths are listed in DESIGN.md)."""
from django.contrib.auth import views as auth_views
from django.urls import include, path

from proget_web import views
from proget_web.administration import users_admin

urlpatterns = [
    path("", views.home, name="home"),
    path("health", views.health, name="health"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", users_admin.site.urls),  # users and groups only (proget_web/administration/users_admin.py)
    path("", include("proget_web.administration.urls")),
    path("", include("proget_web.status.urls")),
    path("", include("feeds.urls")),
    path("", include("proget_web.feedpages.urls")),
    path("", include("api.urls")),
]
