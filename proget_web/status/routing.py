"""WebSocket routes of the Service Status page."""

websocket_urlpatterns: list = []
