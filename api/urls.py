"""URLs of the JSON API (/api/...), its OpenAPI description and /metrics."""
from django.urls import path, re_path

from api import history_views, views, yank_views

urlpatterns = [
    path("api/openapi.json", views.openapi_view, name="api-openapi"),
    path("api/settings/list", views.settings_list_view, name="api-settings-list"),
    path("api/settings/set", views.settings_set_view, name="api-settings-set"),
    path("api/service/status", views.service_status_view, name="api-service-status"),
    re_path(r"^api/service/runners/(?P<name>[^/]+)/(?P<action>run|pause|resume)$", views.runner_action_view,
            name="api-runner-action"),
    re_path(r"^api/service/runners/(?P<name>[^/]+)/history$", history_views.runner_history_view,
            name="api-runner-history"),
    re_path(r"^api/service/runners/(?P<name>[^/]+)/history/(?P<run_id>[0-9]{1,20})$", history_views.runner_run_view,
            name="api-runner-run"),
    path("api/feeds/<str:feed>/reindex", views.feed_reindex_view, name="api-feed-reindex"),
    path("api/feeds/<str:feed>/yank", yank_views.feed_yank_view, name="api-feed-yank"),
    path("api/feeds/<str:feed>/unyank", yank_views.feed_unyank_view, name="api-feed-unyank"),
    path("api/triggers/<int:trigger_id>", views.trigger_view, name="api-trigger"),
    re_path(r"^api/(?P<path>.*)$", views.not_found_view, name="api-not-found"),
    path("metrics", views.metrics_view, name="metrics"),
]
