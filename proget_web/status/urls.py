"""URLs of the Service Status page."""
from django.urls import path

from proget_web.status import views

urlpatterns = [
    path("administration/service", views.service_status, name="service-status"),
]
