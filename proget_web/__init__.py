"""The web node: Django project settings, URLs, ASGI entry point and the pages."""

__version__ = "0.1.0"
