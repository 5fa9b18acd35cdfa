"""End to end: a real service node indexes a feed, a real daphne serves it, a real pip installs from it.

pkg-a needs pkg-b; pkg-b 2.0 requires Python < 3, so pip must take pkg-b 1.0.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import Resolver404, resolve

import proget_web.settings as node_settings
from tests.feeds.builders import metadata_text, sdist_tar, wheel
from tests.feeds.servers import daphne_serving, pip_install
from tests.processes import manage, migrate


def _feeds_wired_into_the_web_node() -> bool:
    try:
        resolve("/pypi/main/simple/", urlconf="proget_web.urls")
    except Resolver404:
        return False
    return "feeds" in node_settings.INSTALLED_APPS


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _feeds_wired_into_the_web_node(),
                       reason="the feeds app is not yet in INSTALLED_APPS and proget_web/urls.py"),
]


def test_pip_installs_a_package_and_its_dependency_from_a_feed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    migrate(data)
    manage(data, "feeds", "create", "main")
    folder = data / "packages" / "main"
    wheel(folder, "pkg-a", "1.0", requires=("pkg-b",))
    wheel(folder, "pkg-b", "1.0", requires_python=">=3")
    wheel(folder, "pkg-b", "2.0", requires_python="<3")
    sdist_tar(folder, "pkg-b", "2.0", pkg_info=metadata_text("pkg-b", "2.0", requires_python="<3"))
    indexed = manage(data, "runindexer", "--once")
    assert "Feed Indexing" in indexed.stdout + indexed.stderr

    target = tmp_path / "site"
    with daphne_serving(data, log=tmp_path / "daphne.log") as base:
        result = pip_install(base, "pkg-a", target=target)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "pkg_a_mod.py").read_text() == "VERSION = '1.0'\n"
    assert (target / "pkg_b_mod.py").read_text() == "VERSION = '1.0'\n"
    assert sorted(path.name for path in target.glob("*.dist-info")) == ["pkg_a-1.0.dist-info", "pkg_b-1.0.dist-info"]
