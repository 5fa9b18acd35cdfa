"""The feeds app's URLs mounted as the web node mounts them, so its views are tested on their own."""
from django.urls import include, path

urlpatterns = [path("", include("feeds.urls"))]
