"""PyPI feeds: the Feed and PackageFile models, package metadata reading, indexing and the simple API."""
