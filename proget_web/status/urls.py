"""URLs of the Service Status page and the task runners' run history."""
from django.urls import path

from proget_web.status import history_views, views

urlpatterns = [
    path("administration/service", views.service_status, name="service-status"),
    path("administration/service/runners/<str:name>/history", history_views.runner_history, name="runner-history"),
    path("administration/service/runners/<str:name>/history/<int:run_id>", history_views.runner_run,
         name="runner-run"),
]
