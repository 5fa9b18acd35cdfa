"""URLs of the feeds app: the PyPI simple API, file downloads and twine uploads (DESIGN.md's contract paths)."""
from django.urls import path, re_path

from feeds import views_simple, views_upload

app_name = "feeds"

urlpatterns = [
    path("pypi/<str:feed>/simple/", views_simple.simple_index, name="simple-index"),
    path("pypi/<str:feed>/simple/<str:project>/", views_simple.simple_project, name="simple-project"),
    # PEP 658: a file's core metadata is at its URL plus ".metadata" (no package file name ends so).
    re_path(r"^pypi/(?P<feed>[^/]+)/files/(?P<filename>[^/]+)\.metadata$", views_simple.core_metadata,
            name="core-metadata"),
    path("pypi/<str:feed>/files/<str:filename>", views_simple.download, name="download"),
    path("pypi/<str:feed>/legacy/", views_upload.legacy_upload, name="legacy-upload"),
]
