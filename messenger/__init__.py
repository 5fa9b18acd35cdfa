"""The service messenger: the small encrypted request/reply channel between web and service nodes.

The pure core (limits, errors, crypto, messages, protocol, endpoint) does no I/O; the asyncio
adapters (server, client) drive it. It imports no Django (an import contract in `make lint`): reading its
settings from Advanced Settings is the service node's glue, indexer/messenger_config.py. See docs/messenger.md.
"""
