"""How big an upload may be: the package file cap and the whole request's cap, in one place.

Free of Django imports, so the web server can refuse a request from its headers before the app is asked.
"""
from __future__ import annotations

# The largest package file accepted. Real wheels are mostly < 10 MiB; PyPI's default cap is 100 MiB.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
# Room for the form fields around the file (twine sends the README as `description`), bounded by
# Django's DATA_UPLOAD_MAX_MEMORY_SIZE.
FORM_OVERHEAD_BYTES = 16 * 1024 * 1024
# The largest request body the web node reads at all, on any route: a Content-Length above it is refused
# (413) before a byte of the body is read. docs/deployment.md's nginx `client_max_body_size` says the same.
MAX_UPLOAD_REQUEST_BYTES = MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES
