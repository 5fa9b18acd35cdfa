"""What every node (web and service) shares below the domains: the version, the data folder and its checks,
the configured folders' checks, and the behaviour of the management commands people type."""

__version__ = "0.1.0"
