"""URLs of the Service Status page."""

urlpatterns: list = []
