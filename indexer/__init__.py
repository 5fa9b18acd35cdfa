"""The service node: task runners and their registry, durable triggers, run history, the messenger server
(`manage.py runindexer`), and the messenger's Django glue with `manage.py messenger`."""
