"""The service node: task runners, durable triggers and the messenger server (`manage.py runindexer`)."""
