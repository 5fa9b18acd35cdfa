"""The feed pages: permissions, CSRF, listing and managing feeds, one feed's files and errors, Reindex and status.json.

The service is not running in these tests (the messenger socket does not exist), so Reindex takes the queued path
for real; the reachable paths replace the messenger call with a canned answer.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.utils import timezone

from feeds.models import Feed, PackageFile
from feeds.services import feed_create
from indexer.models import Trigger
from indexer.nudges import NudgeSent
from indexer.triggers import trigger_claim, trigger_finish
from messenger.errors import RequestTimeout
from proget_web.feedpages import progress
from settings_store.services import setting_set

pytestmark = pytest.mark.django_db

PASSWORD = "pw"
FEED = "main"
EVIL = "<script>alert(1)</script>"
QUEUED = "Reindexing main: queued. The service is not reachable right now; the reindex starts as soon as it is back."


# --- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture
def packages_root(tmp_path: Path) -> Path:
    root = tmp_path / "packages"
    setting_set(name="Storage.PackagesRootPath", value=str(root), actor="test", source="test")
    return root


@pytest.fixture
def feed(packages_root: Path) -> Feed:
    return feed_create(name=FEED, description="The main feed")


def _user(username: str, *, groups: tuple[str, ...] = (), perms: tuple[str, ...] = (), superuser: bool = False) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_superuser=superuser, is_staff=superuser)
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def _client(user: User | None, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def anonymous() -> Client:
    return Client()


@pytest.fixture
def plain() -> Client:
    return _client(_user("paula"))


@pytest.fixture
def manager() -> Client:
    return _client(_user("manfred", groups=("Feed Managers",)))


@pytest.fixture
def settings_admin() -> Client:
    """Holds administration.change_settings without being a superuser: the permission the feed forms need."""
    return _client(_user("sam", perms=("administration.change_settings",)))


@pytest.fixture
def admin() -> Client:
    return _client(_user("ada", superuser=True))


def _page(response) -> str:
    return response.content.decode()


def _messages(page: str) -> list[str]:
    return [html.unescape(text).strip() for text in re.findall(r'<li class="message[^"]*"[^>]*>(.*?)</li>', page, re.S)]


def _field_errors(page: str, field: str) -> list[str]:
    found = re.findall(rf'<p class="field-error" id="id_{field}_error">(.*?)</p>', page, re.S)
    return [html.unescape(text) for text in found]


def _file(feed: Feed, filename: str, **fields) -> PackageFile:
    return PackageFile.objects.create(feed=feed, filename=filename, **fields)


def _create_form(**overrides: str) -> dict:
    return {"name": "team", "description": "", "drop_path": "", "keep_latest": "0", **overrides}


# --- permissions ------------------------------------------------------------------------------------------------

GET_PAGES = ["/feeds/", f"/feeds/{FEED}/", f"/feeds/{FEED}/status.json", f"/feeds/{FEED}/edit",
             f"/feeds/{FEED}/delete"]
ADMIN_ONLY_PAGES = [f"/feeds/{FEED}/edit", f"/feeds/{FEED}/delete"]
POSTS = [
    ("/feeds/", _create_form()),
    (f"/feeds/{FEED}/reindex", {}),
    (f"/feeds/{FEED}/edit", {"description": "x", "drop_path": "", "keep_latest": "1"}),
    (f"/feeds/{FEED}/delete", {}),
]


@pytest.mark.parametrize("url", GET_PAGES)
def test_anonymous_visitors_are_sent_to_the_login_page(anonymous: Client, feed: Feed, url: str) -> None:
    response = anonymous.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize(("url", "data"), POSTS)
def test_anonymous_posts_are_sent_to_the_login_page_and_change_nothing(
    anonymous: Client, feed: Feed, url: str, data: dict
) -> None:
    response = anonymous.post(url, data)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    assert list(Feed.objects.values_list("name", "description")) == [(FEED, "The main feed")]
    assert not Trigger.objects.exists()


@pytest.mark.parametrize("url", ["/feeds/", f"/feeds/{FEED}/", f"/feeds/{FEED}/status.json"])
def test_a_plain_user_can_view_feeds(plain: Client, feed: Feed, url: str) -> None:
    assert plain.get(url).status_code == 200


@pytest.mark.parametrize("url", ADMIN_ONLY_PAGES)
def test_a_plain_user_cannot_open_the_edit_and_delete_pages(plain: Client, feed: Feed, url: str) -> None:
    response = plain.get(url)
    assert response.status_code == 403
    assert "You can't open this page" in _page(response)


@pytest.mark.parametrize(("url", "data"), POSTS)
def test_a_plain_user_cannot_create_reindex_edit_or_delete(plain: Client, feed: Feed, url: str, data: dict) -> None:
    assert plain.post(url, data).status_code == 403
    assert list(Feed.objects.values_list("name", "description")) == [(FEED, "The main feed")]
    assert not Trigger.objects.exists()


def test_a_plain_user_sees_no_reindex_button_and_no_admin_forms(plain: Client, feed: Feed) -> None:
    detail = _page(plain.get(f"/feeds/{FEED}/"))
    assert f'action="/feeds/{FEED}/reindex"' not in detail
    assert f"/feeds/{FEED}/edit" not in detail
    index = _page(plain.get("/feeds/"))
    assert "New feed" not in index and 'name="name"' not in index
    assert f"/feeds/{FEED}/delete" not in index


def test_a_feed_manager_sees_the_reindex_button_and_can_reindex(manager: Client, feed: Feed) -> None:
    assert f'action="/feeds/{FEED}/reindex"' in _page(manager.get(f"/feeds/{FEED}/"))
    response = manager.post(f"/feeds/{FEED}/reindex")
    assert response.status_code == 302 and response["Location"] == f"/feeds/{FEED}/"
    trigger = Trigger.objects.get()
    assert (trigger.kind, trigger.target, trigger.requested_by) == ("feed.reindex", FEED, "manfred")


@pytest.mark.parametrize(("url", "data"), [POSTS[0], POSTS[2], POSTS[3]])
def test_a_feed_manager_cannot_create_edit_or_delete_feeds(manager: Client, feed: Feed, url: str, data: dict) -> None:
    assert manager.post(url, data).status_code == 403
    assert list(Feed.objects.values_list("name", "description")) == [(FEED, "The main feed")]


@pytest.mark.parametrize("who", ["settings_admin", "admin"])
def test_admins_can_create_edit_and_delete_feeds(request: pytest.FixtureRequest, feed: Feed, who: str) -> None:
    client: Client = request.getfixturevalue(who)
    index = _page(client.get("/feeds/"))
    assert "New feed" in index and f'href="/feeds/{FEED}/edit"' in index

    created = client.post("/feeds/", _create_form(name="team", description="Team packages", keep_latest="3",
                                                  dry_run="on", drop_path="/srv/drop"))
    assert created.status_code == 302 and created["Location"] == "/feeds/team/"
    team = Feed.objects.get(name="team")
    assert (team.description, team.retention_keep_latest, team.retention_dry_run, team.drop_path) == (
        "Team packages", 3, True, "/srv/drop")
    assert Path(team.storage_path).is_dir()

    assert client.get("/feeds/team/edit").status_code == 200
    edited = client.post("/feeds/team/edit", {"description": "Changed", "drop_path": "", "keep_latest": "0"})
    assert edited.status_code == 302 and edited["Location"] == "/feeds/team/"
    team.refresh_from_db()
    assert (team.description, team.retention_keep_latest, team.retention_dry_run, team.drop_path) == (
        "Changed", 0, False, "")

    confirm = _page(client.get("/feeds/team/delete"))
    assert "Delete feed team?" in confirm and "The package files stay on disk" in confirm
    assert Feed.objects.filter(name="team").exists()  # the GET asked, it did not delete
    deleted = client.post("/feeds/team/delete", follow=True)
    assert not Feed.objects.filter(name="team").exists()
    assert Path(team.storage_path).is_dir()  # feed_delete forgets the index, the files stay
    assert f"Feed team deleted. Its package files stay on disk in {team.storage_path}" in _messages(_page(deleted))[0]


# --- CSRF -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "data"), POSTS)
def test_every_post_needs_the_csrf_token(feed: Feed, url: str, data: dict) -> None:
    client = _client(_user("ada", superuser=True), csrf=True)
    assert client.post(url, data).status_code == 403
    assert list(Feed.objects.values_list("name", "description")) == [(FEED, "The main feed")]
    assert not Trigger.objects.exists()


def test_the_reindex_form_carries_a_working_csrf_token(feed: Feed) -> None:
    client = _client(_user("manfred", groups=("Feed Managers",)), csrf=True)
    page = _page(client.get(f"/feeds/{FEED}/"))
    token = re.search(r'action="/feeds/main/reindex".*?name="csrfmiddlewaretoken" value="([^"]+)"', page, re.S).group(1)
    assert client.post(f"/feeds/{FEED}/reindex", {"csrfmiddlewaretoken": token}).status_code == 302
    assert Trigger.objects.count() == 1


# --- the feed list ----------------------------------------------------------------------------------------------


def test_the_list_shows_description_counts_last_indexing_and_errors(plain: Client, feed: Feed) -> None:
    _file(feed, "a-1.0-py3-none-any.whl", project="a", version="1.0")
    _file(feed, "a-2.0-py3-none-any.whl", project="a", version="2.0")
    _file(feed, "b-1.0.tar.gz", project="b", version="1.0")
    _file(feed, "broken.whl", index_error="no METADATA")
    feed.last_indexed_at = timezone.now()
    feed.last_index_result = "3 file(s) indexed, 1 error(s)"
    feed.save()
    feed_create(name="empty")
    page = _page(plain.get("/feeds/"))
    row = page[page.index('<tr data-feed="main"'): page.index("</tr>", page.index('<tr data-feed="main"'))]
    assert "The main feed" in row
    assert re.search(r'data-field="projects">2<', row) and re.search(r'data-field="files">3<', row)
    assert '<span class="tag bad">1</span>' in row
    assert "3 file(s) indexed, 1 error(s)" in row
    empty = page[page.index('<tr data-feed="empty"'):]
    assert "never" in empty[: empty.index("</tr>")]


# --- one feed ---------------------------------------------------------------------------------------------------


def test_an_unknown_feed_is_a_404_page(plain: Client, feed: Feed) -> None:
    response = plain.get("/feeds/nope/")
    assert response.status_code == 404
    assert "There is no feed called <code>nope</code>" in _page(response)
    assert plain.get("/feeds/nope/status.json").status_code == 404


def test_an_unknown_feed_name_is_escaped_on_the_404_page(plain: Client, feed: Feed) -> None:
    page = _page(plain.get("/feeds/%3Cscript%3E/"))
    assert "<script>" not in page.split("<main>")[1]
    assert "&lt;script&gt;" in page


def test_the_feed_page_lists_files_with_version_python_size_and_the_pip_command(plain: Client, feed: Feed) -> None:
    _file(feed, "pkg_a-1.0-py3-none-any.whl", project="pkg-a", version="1.0", requires_python=">=3.9",
          size=2048, summary="Package A")
    _file(feed, "pkg_a-2.0-py3-none-any.whl", project="pkg-a", version="2.0", size=10)
    _file(feed, "aaa-9.0-py3-none-any.whl", project="aaa", version="9.0", size=10)
    page = _page(plain.get(f"/feeds/{FEED}/"))
    assert re.findall(r'<tr data-file="([^"]+)"', page) == [
        "aaa-9.0-py3-none-any.whl", "pkg_a-1.0-py3-none-any.whl", "pkg_a-2.0-py3-none-any.whl"]  # by project, file
    row = page[page.index('<tr data-file="pkg_a-1.0-py3-none-any.whl"'):]
    row = row[: row.index("</tr>")]
    assert "&gt;=3.9" in row and "2.0\xa0KB" in row and "pkg-a" in row and "Package A" not in page
    assert "pip install --index-url http://testserver/pypi/main/simple/ &lt;project&gt;" in page


def test_index_errors_are_shown_prominently_and_escaped(plain: Client, feed: Feed) -> None:
    _file(feed, f"{EVIL}.whl", index_error=f"bad METADATA: {EVIL}")
    _file(feed, "ok-1.0-py3-none-any.whl", project="ok", version="1.0")
    page = _page(plain.get(f"/feeds/{FEED}/"))
    assert EVIL not in page
    errors = page[page.index('<section class="card index-errors"'):]
    errors = errors[: errors.index("</section>")]
    assert "1 file could not be indexed" in errors and 'role="alert"' in errors
    assert "<code class=\"filename\">&lt;script&gt;alert(1)&lt;/script&gt;.whl</code>" in errors
    assert "bad METADATA: &lt;script&gt;alert(1)&lt;/script&gt;" in errors
    assert page.index("index-errors") < page.index('id="feed-files"')  # above the file list
    assert f'data-file="{EVIL}.whl"' not in page  # not in the servable list either


def test_the_feed_page_shows_its_latest_reindex_triggers(manager: Client, feed: Feed) -> None:
    done = Trigger.objects.create(kind="feed.reindex", target=FEED, requested_by="manfred")
    trigger_claim(node="n1", trigger_id=done.id)
    trigger_finish(trigger_id=done.id, node="n1", ok=True, result=f"indexed 1 feed(s) {EVIL}")
    Trigger.objects.create(kind="feed.reindex", target="other", requested_by="x")
    Trigger.objects.create(kind="runner.run", target=FEED, requested_by="x")
    page = _page(manager.get(f"/feeds/{FEED}/"))
    rows = re.findall(r'<tr data-trigger="(\d+)">(.*?)</tr>', page, re.S)
    assert [int(id_) for id_, _ in rows] == [done.id]
    assert "done" in rows[0][1] and "manfred" in rows[0][1]
    assert "indexed 1 feed(s) &lt;script&gt;" in rows[0][1] and EVIL not in page
    assert 'data-active="false"' in page


def test_the_page_has_no_inline_script_or_style(admin: Client, feed: Feed) -> None:
    for url in ("/feeds/", f"/feeds/{FEED}/", f"/feeds/{FEED}/edit", f"/feeds/{FEED}/delete"):
        page = _page(admin.get(url))
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), url
        assert " style=" not in page and "<style" not in page, url
        assert not re.search(r"\son[a-z]+=", page), url
    assert '<script src="/static/proget/feeds.js" defer></script>' in _page(admin.get(f"/feeds/{FEED}/"))


# --- create form validation -------------------------------------------------------------------------------------

BAD_NAMES = ["../etc", ".hidden", "a b", "x" * 65, "a..b"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_an_invalid_feed_name_is_a_field_error_with_the_model_message(admin: Client, feed: Feed, name: str) -> None:
    response = admin.post("/feeds/", _create_form(name=name))
    assert response.status_code == 400
    errors = _field_errors(_page(response), "name")
    assert len(errors) == 1 and errors[0].startswith(f"invalid feed name {name!r}: use 1-64 letters")
    assert 'aria-invalid="true"' in _page(response)
    assert Feed.objects.count() == 1


def test_other_create_field_errors_and_the_typed_values_are_kept(admin: Client, feed: Feed) -> None:
    response = admin.post("/feeds/", _create_form(name="team", drop_path="relative/drop", keep_latest="-1",
                                                  description=EVIL))
    page = _page(response)
    assert response.status_code == 400
    assert _field_errors(page, "drop_path") == ["the drop path must be an absolute path, not 'relative/drop'"]
    assert _field_errors(page, "keep_latest") == ["Ensure this value is greater than or equal to 0."]
    assert 'value="team"' in page and "&lt;script&gt;alert(1)&lt;/script&gt;</textarea>" in page
    assert not Feed.objects.filter(name="team").exists()


def test_a_name_taken_ignoring_case_is_refused_with_the_service_message(admin: Client, feed: Feed) -> None:
    response = admin.post("/feeds/", _create_form(name="MAIN"))
    assert response.status_code == 400
    assert "a feed called &#x27;MAIN&#x27; already exists (feed names ignore case)" in _page(response)
    assert Feed.objects.count() == 1


def test_an_edit_with_a_relative_drop_path_is_a_field_error(admin: Client, feed: Feed) -> None:
    response = admin.post(f"/feeds/{FEED}/edit", {"description": "x", "drop_path": "rel", "keep_latest": "0"})
    assert response.status_code == 400
    assert _field_errors(_page(response), "drop_path") == ["the drop path must be an absolute path, not 'rel'"]
    feed.refresh_from_db()
    assert feed.description == "The main feed"


def test_edit_and_delete_of_an_unknown_feed(admin: Client, feed: Feed) -> None:
    assert admin.get("/feeds/nope/edit").status_code == 404
    assert admin.get("/feeds/nope/delete").status_code == 404
    response = admin.post("/feeds/nope/delete", follow=True)
    assert _messages(_page(response)) == ["Nothing deleted: no feed called 'nope'."]
    assert Feed.objects.count() == 1


# --- Reindex ----------------------------------------------------------------------------------------------------


def test_get_on_reindex_is_405(manager: Client, anonymous: Client, feed: Feed) -> None:
    assert manager.get(f"/feeds/{FEED}/reindex").status_code == 405
    assert anonymous.get(f"/feeds/{FEED}/reindex").status_code == 405
    assert not Trigger.objects.exists()


def test_reindex_with_the_service_down_queues_a_pending_trigger_and_says_why(manager: Client, feed: Feed) -> None:
    response = manager.post(f"/feeds/{FEED}/reindex", follow=True)
    assert response.redirect_chain == [(f"/feeds/{FEED}/", 302)]
    trigger = Trigger.objects.get()
    assert trigger.state == Trigger.State.PENDING
    page = _page(response)
    [message] = _messages(page)
    assert message == QUEUED  # in the user's words: no trigger id, no socket path
    assert f'class="message queued trigger-{trigger.id} warning"' in page  # feeds.js drops it once the trigger ran
    assert 'data-active="true"' in page  # the page follows the pending trigger
    assert re.search(rf'<tr data-trigger="{trigger.id}">.*?pending.*?manfred', page, re.S)


def test_reindex_with_the_service_up_says_what_it_answered(
    manager: Client, feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_nudge(*, trigger_id: int, wait: float) -> NudgeSent:
        calls.append(trigger_id)
        trigger_claim(trigger_id=trigger_id, node="svc")  # what the service does on the nudge
        return NudgeSent(reachable=True, reply={
            "outcomes": [f"trigger {trigger_id} (feed.reindex main): Feed Indexing started"]})

    monkeypatch.setattr("indexer.trigger_requests.trigger_nudge", fake_nudge)
    page = _page(manager.post(f"/feeds/{FEED}/reindex", follow=True))
    trigger = Trigger.objects.get()
    assert calls == [trigger.id]
    assert _messages(page) == ["Reindexing main: started."]
    assert 'class="message success"' in page


def test_reindex_with_the_nudge_on_its_way_answers_without_waiting(
    manager: Client, feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("indexer.trigger_requests.trigger_nudge",
                        lambda *, trigger_id, wait: NudgeSent(reachable=True))  # over the open connection
    page = _page(manager.post(f"/feeds/{FEED}/reindex", follow=True))
    assert Trigger.objects.get().state == Trigger.State.PENDING
    assert _messages(page) == ["Reindexing main: requested; it starts as soon as the indexer is free."]


def test_reindex_of_a_feed_deleted_meanwhile_says_so(manager: Client, feed: Feed) -> None:
    Feed.objects.filter(name=FEED).delete()
    response = manager.post(f"/feeds/{FEED}/reindex", follow=True)
    assert response.redirect_chain == [("/feeds/", 302)]
    assert _messages(_page(response)) == [
        "Feed main no longer exists (it was deleted), so there is nothing to reindex."]
    assert not Trigger.objects.exists()


# --- status.json ------------------------------------------------------------------------------------------------


def _status(client: Client) -> dict:
    response = client.get(f"/feeds/{FEED}/status.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    return json.loads(response.content)


def _snapshot_says(monkeypatch: pytest.MonkeyPatch, answer) -> list:
    calls = []

    def fake_call(type: str, *, body: dict, timeout: float) -> dict:
        calls.append((type, body, timeout))
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(progress, "service_call", fake_call)
    return calls


def test_status_with_no_trigger(plain: Client, feed: Feed, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _snapshot_says(monkeypatch, AssertionError("the service must not be asked"))
    assert _status(plain) == {
        "feed": FEED, "active": False, "triggers": [], "progress": None, "service": None,
        "lastIndexedAt": None, "lastIndexResult": "",
    }
    assert calls == []


def test_status_of_a_pending_trigger_does_not_ask_the_service(
    plain: Client, feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _snapshot_says(monkeypatch, AssertionError("the service must not be asked"))
    trigger = Trigger.objects.create(kind="feed.reindex", target=FEED, requested_by="manfred")
    status = _status(plain)
    assert status["active"] is True and status["progress"] is None and status["service"] is None
    assert status["triggers"] == [{
        "id": trigger.id, "state": "pending", "requestedBy": "manfred", "createdAt": trigger.created_at.isoformat(),
        "claimedAt": None, "finishedAt": None, "result": "",
    }]
    assert calls == []


def test_status_of_a_running_trigger_carries_the_runner_progress(
    plain: Client, feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = {"runners": {"Feed Indexing": {"name": "Feed Indexing", "state": "running", "progressPercent": 42.5,
                                              "progressMessage": f"main: {EVIL}"}}, "logs": []}
    calls = _snapshot_says(monkeypatch, snapshot)
    trigger = Trigger.objects.create(kind="feed.reindex", target=FEED, requested_by="manfred")
    trigger_claim(node="n1", trigger_id=trigger.id)
    status = _status(plain)
    assert calls == [("status.snapshot", {"logs": 0}, progress.PROGRESS_TIMEOUT)]
    assert progress.PROGRESS_TIMEOUT <= 1.0
    assert status["active"] is True and status["triggers"][0]["state"] == "running"
    assert status["triggers"][0]["claimedAt"] is not None
    assert status["progress"] == {"percent": 42.5, "message": f"main: {EVIL}"}  # JSON; feeds.js uses textContent
    assert status["service"] == {"reachable": True, "reason": ""}


def test_status_of_a_running_trigger_with_the_service_unreachable_degrades_to_the_trigger_state(
    plain: Client, feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    _snapshot_says(monkeypatch, RequestTimeout("no answer within 1.0 s"))
    trigger = Trigger.objects.create(kind="feed.reindex", target=FEED, requested_by="manfred")
    trigger_claim(node="n1", trigger_id=trigger.id)
    status = _status(plain)
    assert status["active"] is True and status["triggers"][0]["state"] == "running"
    assert status["progress"] is None
    assert status["service"] == {"reachable": False, "reason": "no answer within 1.0 s"}


def test_status_of_a_running_trigger_with_no_service_at_all(plain: Client, feed: Feed) -> None:
    """The real messenger call, with no service listening: it answers at once with the reason."""
    trigger = Trigger.objects.create(kind="feed.reindex", target=FEED, requested_by="manfred")
    trigger_claim(node="n1", trigger_id=trigger.id)
    status = _status(plain)
    assert status["service"]["reachable"] is False and status["service"]["reason"]
    assert status["progress"] is None


@pytest.mark.parametrize(("ok", "state"), [(True, "done"), (False, "failed")])
def test_status_of_a_finished_trigger_stops_the_polling(
    plain: Client, feed: Feed, monkeypatch: pytest.MonkeyPatch, ok: bool, state: str
) -> None:
    calls = _snapshot_says(monkeypatch, AssertionError("the service must not be asked"))
    trigger = Trigger.objects.create(kind="feed.reindex", target=FEED, requested_by="manfred")
    trigger_claim(node="n1", trigger_id=trigger.id)
    trigger_finish(trigger_id=trigger.id, node="n1", ok=ok, result="the result")
    feed.last_indexed_at = timezone.now()
    feed.last_index_result = "1 file(s) indexed"
    feed.save()
    status = _status(plain)
    assert status["active"] is False and status["progress"] is None
    assert (status["triggers"][0]["state"], status["triggers"][0]["result"]) == (state, "the result")
    assert status["triggers"][0]["finishedAt"] is not None
    assert (status["lastIndexedAt"], status["lastIndexResult"]) == (feed.last_indexed_at.isoformat(),
                                                                     "1 file(s) indexed")
    assert calls == []


def test_status_is_active_while_any_recent_trigger_is_unfinished(plain: Client, feed: Feed) -> None:
    older = Trigger.objects.create(kind="feed.reindex", target=FEED, requested_by="a")
    newer = Trigger.objects.create(kind="feed.reindex", target=FEED, requested_by="b")
    trigger_claim(node="n1", trigger_id=newer.id)
    trigger_finish(trigger_id=newer.id, node="n1", ok=True, result="ok")
    status = _status(plain)
    assert [t["id"] for t in status["triggers"]] == [newer.id, older.id]
    assert status["active"] is True
