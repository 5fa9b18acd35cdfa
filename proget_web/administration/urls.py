"""URLs of the administration pages."""

urlpatterns: list = []
