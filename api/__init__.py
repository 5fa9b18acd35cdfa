"""API keys, the JSON API, its OpenAPI description and the Prometheus metrics endpoint."""
