"""Administration pages: Advanced Settings, Cluster, API keys, users, and the permission checks they share.

Their core (permissions, changing settings, the Cluster page's data) is the administration app."""
