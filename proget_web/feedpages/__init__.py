"""The feed pages for users: the feed list, one feed's packages and files, Reindex with live progress."""
