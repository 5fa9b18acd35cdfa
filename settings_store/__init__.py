"""Advanced Settings: typed settings declared in code, values stored in the database, audited."""
