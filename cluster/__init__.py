"""The cluster: the node registry, the primary lease with its fencing and failover history, and where the primary
is. Both node kinds use it; it sits above the settings store and below the indexer, feeds, the API and the web."""
