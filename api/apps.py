"""The api app: API keys (scoped, hashed, revocable), the JSON API under /api/ and /metrics."""
from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "API keys and JSON API"
