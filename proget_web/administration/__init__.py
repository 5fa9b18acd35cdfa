"""Administration pages: Advanced Settings, cluster, permissions."""
