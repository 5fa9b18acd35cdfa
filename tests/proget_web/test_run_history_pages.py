"""The run history pages: newest first with paging both ways, one run with its log and the dropped-lines marker,
text shown inertly, unknown runners and runs 404, and the Service Status page linking to them."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from indexer.models import RunHistory
from proget_web.status.history_views import PAGE_SIZE

pytestmark = pytest.mark.django_db

HISTORY = "/administration/service/runners/Feed%20Retention/history"


@pytest.fixture
def admin() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


def make_runs(count: int) -> list[RunHistory]:
    start = timezone.now() - timedelta(days=1)
    return [RunHistory.objects.create(runner="Feed Retention", started_at=start + timedelta(minutes=n), result="ok",
                                      message=f"retention run {n}.", duration=1.25, triggered_by="schedule")
            for n in range(count)]


def shown(page: str) -> list[str]:
    return [part.split(".")[0] for part in page.split("retention run ")[1:]]


def test_runs_newest_first_then_older_and_newer_pages(admin: Client) -> None:
    made = make_runs(PAGE_SIZE + 3)
    first = admin.get(HISTORY).content.decode()
    assert shown(first) == [str(n) for n in range(PAGE_SIZE + 2, 2, -1)]
    assert f'href="?before={made[3].id}"' in first and "Newer runs" not in first
    assert " UTC</time>" in first and "1.250 s" in first
    older = admin.get(f"{HISTORY}?before={made[3].id}").content.decode()
    assert shown(older) == ["2", "1", "0"] and "Older runs" not in older
    assert f'href="?after={made[2].id}"' in older
    newer = admin.get(f"{HISTORY}?after={made[2].id}").content.decode()
    assert shown(newer) == shown(first)
    assert shown(admin.get(f"{HISTORY}?before=nonsense").content.decode()) == shown(first)


def test_a_run_shows_its_log_with_the_dropped_lines_marked_and_escaped(admin: Client) -> None:
    (run,) = make_runs(1)
    at = timezone.now().timestamp()
    RunHistory.objects.filter(id=run.id).update(
        log=[{"at": at, "level": "INFO", "logger": "indexer.runner", "message": "first <b>line</b>"},
             {"at": at, "level": "ERROR", "logger": "indexer.runner", "message": "last line"}],
        log_dropped=40, log_dropped_at=1, trigger_id=12, triggered_by="alice (API key 3)")
    page = admin.get(f"{HISTORY}/{run.id}").content.decode()
    assert page.index("first &lt;b&gt;line&lt;/b&gt;") < page.index("… 40 lines dropped") < page.index("last line")
    assert "alice (API key 3) (trigger 12)" in page and "<b>line" not in page


def test_unknown_runners_and_runs_are_404(admin: Client) -> None:
    (run,) = make_runs(1)
    assert admin.get("/administration/service/runners/Nope/history").status_code == 404
    assert admin.get(f"/administration/service/runners/Feed%20Indexing/history/{run.id}").status_code == 404
    assert admin.get(f"{HISTORY}/{2**64}").status_code == 404


def test_the_status_page_links_each_runner_to_its_history(admin: Client) -> None:
    page = admin.get("/administration/service").content.decode()
    assert 'data-history-url="/administration/service/runners/RUNNER/history"' in page
