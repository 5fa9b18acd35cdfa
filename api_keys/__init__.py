"""API keys: how they are stored (a hash, scopes, an owner) and checked. Below the domains: feeds checks them for
pip and twine, the JSON API and the pages manage them."""
