"""The administration core: its permissions, changing settings with what the service answered, the messenger key,
removing nodes, and what the Cluster page reads. The pages (proget_web.administration) and the JSON API use it."""
