"""The runners each domain brings, and the trigger kinds that run one of them on a named target.

The domains above the indexer (feeds) register theirs from their AppConfig.ready, so the indexer imports none
of them: a Reindex is a trigger kind whose target (a feed) the domain checks and whose runner it names.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from indexer.runner import Runner

_runners: list[type[Runner]] = []


@dataclass(frozen=True, kw_only=True)
class TargetedKind:
    """A trigger kind that runs `runner` on one named target of the domain (e.g. Reindex: one feed)."""

    runner: str
    noun: str  # what a target is, for messages: "feed"
    exists: Callable[[str], bool]
    unknown_code: str  # the refusal's code (messenger.messages) when the target does not exist

    def refusal(self, target: str) -> str | None:
        """Why `target` cannot be run on (no such one), or None."""
        return None if self.exists(target) else f"unknown {self.noun} {target!r}"


_targeted: dict[str, TargetedKind] = {}


def runners_register(*runners: type[Runner]) -> None:
    """Add a domain's runners, in the order the Service Status page lists them (again: no change)."""
    _runners.extend(runner for runner in runners if runner not in _runners)


def registered_runners() -> tuple[type[Runner], ...]:
    """The domains' runners, in registration order."""
    return tuple(_runners)


def targeted_kind_register(
    kind: str, *, runner: type[Runner], noun: str, exists: Callable[[str], bool], unknown_code: str,
) -> None:
    """Make triggers of `kind` run `runner` limited to their target, which `exists` must know."""
    _targeted[kind] = TargetedKind(runner=runner.name, noun=noun, exists=exists, unknown_code=unknown_code)


def targeted_kind(kind: str) -> TargetedKind | None:
    """What a trigger of `kind` runs on its target, or None for a plain Run (the target names the runner)."""
    return _targeted.get(kind)
