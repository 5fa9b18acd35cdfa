"""WebSocket routes of the web node: each live page contributes its own."""
from proget_web.status.routing import websocket_urlpatterns as status_routes

websocket_urlpatterns = [*status_routes]
