"""Shared by the soak tests: PROGET_SOAK_LONG=1 runs the full-size soak (minutes) instead of the bounded CI run."""
from __future__ import annotations

import os

LONG = os.environ.get("PROGET_SOAK_LONG") == "1"
