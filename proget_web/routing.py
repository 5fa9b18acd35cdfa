"""WebSocket routes of the web node (the live pages add theirs here)."""

websocket_urlpatterns: list = []
