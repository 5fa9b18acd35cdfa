"""The web node: Django project settings, URLs, ASGI entry point and the pages."""
