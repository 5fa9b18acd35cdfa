"""ASGI entry point for daphne: HTTP through Django, WebSockets through Channels routing."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proget_web.settings")
# Build the Django ASGI app first so apps are loaded before routing imports consumers.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from node_base.startup import node_start_refusal  # noqa: E402
from proget_web.origins import SameOriginValidator  # noqa: E402
from proget_web.routing import websocket_urlpatterns  # noqa: E402

if (refusal := node_start_refusal()) is not None:
    raise SystemExit(refusal)  # daphne stops with this one line and exit status 1

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Not Channels' AllowedHostsOriginValidator: it compares host names only, so any port or scheme of an
        # allowed host (another local server, an http page of an https site) could drive an admin's socket.
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
