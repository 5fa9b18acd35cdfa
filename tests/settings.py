"""Settings for the test suite: the embedded defaults (SQLite, in-memory channels) in a temp data dir.

DATABASE_URL / REDIS_URL are moved aside (to PROGET_TEST_DATABASE_URL / PROGET_TEST_REDIS_URL) so the
main suite tests the embedded default; the PostgreSQL/Redis tests read them from there explicitly.
"""
import os
import tempfile

for _name in ("DATABASE_URL", "REDIS_URL"):
    if _name in os.environ:
        os.environ[f"PROGET_TEST_{_name}"] = os.environ.pop(_name)
os.environ["PROGET_DATA_DIR"] = tempfile.mkdtemp(prefix="proget-test-data-")

from proget_web.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests only
