"""The service messenger: the small encrypted request/reply channel between web and service nodes.

The pure core (limits, errors, crypto, messages, protocol, endpoint) does no I/O; the asyncio
adapters (server, client) drive it. See docs/messenger.md for the protocol.
"""
