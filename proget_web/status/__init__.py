"""The live Service Status page: its view, WebSocket consumer and the per-process link to the service."""
