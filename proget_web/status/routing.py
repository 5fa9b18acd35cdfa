"""WebSocket routes of the Service Status page."""
from django.urls import path

from proget_web.status.consumers import ServiceStatusConsumer

# Contract path of the page's socket (status.js reads it from the page, never retypes it).
STATUS_SOCKET_PATH = "ws/administration/service"

websocket_urlpatterns = [
    path(STATUS_SOCKET_PATH, ServiceStatusConsumer.as_asgi(), name="service-status-socket"),
]
