"""URLs of the feed pages.

Contract paths: /feeds/, /feeds/<feed>/, POST /feeds/<feed>/reindex, POST /feeds/<feed>/upload.
"""
from django.urls import path

from proget_web.feedpages import views

urlpatterns = [
    path("feeds/", views.feeds_index, name="feeds-index"),
    path("feeds/<str:feed>/", views.feed_detail, name="feed-detail"),
    path("feeds/<str:feed>/reindex", views.feed_reindex, name="feed-reindex"),
    path("feeds/<str:feed>/upload", views.feed_upload, name="feed-upload"),
    path("feeds/<str:feed>/status.json", views.feed_status, name="feed-status"),
    path("feeds/<str:feed>/edit", views.feed_edit, name="feed-edit"),
    path("feeds/<str:feed>/delete", views.feed_remove, name="feed-delete"),
]
