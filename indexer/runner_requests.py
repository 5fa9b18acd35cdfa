"""What a caller (the Status page, the JSON API) may ask of a task runner by name: one rule for every caller."""
from __future__ import annotations

from indexer.models import RUNNER_NAME_MAX  # the cap the stored runner names have
from messenger.messages import RUNNER_PAUSE, RUNNER_RESUME

# Each runner action other than Run (which goes through the trigger core) and the service request it becomes.
RUNNER_REQUESTS = {"pause": RUNNER_PAUSE, "resume": RUNNER_RESUME}


def runner_name_valid(name: object) -> bool:
    """True for a runner name a caller may send: a string of 1 to RUNNER_NAME_MAX characters, not only blanks."""
    return isinstance(name, str) and bool(name.strip()) and len(name) <= RUNNER_NAME_MAX
