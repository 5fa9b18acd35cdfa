"""The feeds' tables: a Feed (where its packages live, how it is kept) and one PackageFile row per stored file.

A PackageFile with a non-empty `index_error` could not be indexed; it is shown to admins, never served.
A non-empty `integrity_error` means Feed Integrity found the stored file changed or gone since it was indexed.
A wheel's core metadata (its METADATA bytes) is stored on its row for PEP 658 resolvers: see docs/feeds.md.
"""
from __future__ import annotations

from pathlib import Path

from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from feeds.naming import FEED_NAME_MAX_LENGTH, feed_name_validate

PATH_MAX_LENGTH = 1024


class Feed(models.Model):
    class Type(models.TextChoices):
        PYPI = "pypi", "PyPI"

    name = models.CharField(max_length=FEED_NAME_MAX_LENGTH, unique=True, validators=[feed_name_validate])
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.PYPI)
    description = models.TextField(blank=True)
    # Fixed when the feed is created (from Storage.PackagesRootPath), so changing that setting moves no feed.
    storage_path = models.CharField(max_length=PATH_MAX_LENGTH)
    drop_path = models.CharField(max_length=PATH_MAX_LENGTH, blank=True)
    retention_keep_latest = models.PositiveIntegerField(default=0)  # versions kept per project; 0 keeps all
    retention_dry_run = models.BooleanField(default=False)  # report what retention would delete, delete nothing
    created_at = models.DateTimeField(default=timezone.now)
    last_indexed_at = models.DateTimeField(null=True, blank=True)
    last_index_result = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        # Feed names differ by more than case: their folders may live on a case-insensitive file system.
        constraints = [models.UniqueConstraint(Lower("name"), name="feed_name_unique_ignoring_case")]

    def __str__(self) -> str:
        return self.name

    @property
    def storage(self) -> Path:
        return Path(self.storage_path)


class PackageFile(models.Model):
    feed = models.ForeignKey(Feed, on_delete=models.CASCADE, related_name="files")
    filename = models.CharField(max_length=255)
    project = models.CharField(max_length=255, blank=True)  # PEP 503 normalised name
    version = models.CharField(max_length=128, blank=True)
    requires_python = models.CharField(max_length=255, blank=True)
    summary = models.TextField(blank=True)
    size = models.BigIntegerField(default=0)
    mtime_ns = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    uploaded_at = models.DateTimeField(default=timezone.now)
    indexed_at = models.DateTimeField(default=timezone.now)
    index_error = models.TextField(blank=True)  # why the file is not served; empty when it indexed fine
    # What Feed Integrity found wrong with the stored file (changed or vanished); empty when it matched.
    integrity_error = models.TextField(blank=True)
    integrity_checked_at = models.DateTimeField(null=True, blank=True)
    # PEP 658: the wheel's `*.dist-info/METADATA`, byte for byte, read at indexing; None for sdists and for rows
    # indexed before it was kept (the next index run fills those in). The simple API announces it only with its hash.
    core_metadata = models.BinaryField(null=True, blank=True)
    core_metadata_sha256 = models.CharField(max_length=64, blank=True)
    # PEP 592: a yanked file stays listed and downloadable, marked so that resolvers skip it unless pinned with ==.
    yanked = models.BooleanField(default=False)
    yanked_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["feed", "project", "filename"]
        permissions = [("upload_package", "Can upload packages to feeds (twine)")]
        constraints = [models.UniqueConstraint(fields=["feed", "filename"], name="package_file_unique_per_feed")]
        indexes = [models.Index(fields=["feed", "project"], name="package_file_feed_project")]

    def __str__(self) -> str:
        return f"{self.feed_id}/{self.filename}"
