"""URLs of the administration pages (contract paths, see DESIGN.md)."""
from django.urls import path

from proget_web.administration import api_keys_views, views

urlpatterns = [
    path("administration/advanced-settings", views.advanced_settings, name="advanced-settings"),
    path("administration/cluster", views.cluster, name="cluster"),
    path("administration/cluster/nodes/<path:node>/remove", views.cluster_node_remove, name="cluster-node-remove"),
    path("administration/cluster/nodes/<path:node>/endpoint", views.cluster_node_endpoint,
         name="cluster-node-endpoint"),
    path("administration/api-keys", api_keys_views.api_keys_page, name="api-keys"),
]
