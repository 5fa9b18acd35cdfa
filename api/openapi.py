"""The OpenAPI 3.0 description of the JSON API and /metrics, served at /api/openapi.json.

Hand-written, and kept true by tests/api/test_openapi.py: every route of api/urls.py is described (or listed
in NOT_DESCRIBED with why), every described path resolves to its view, and schemathesis checks the answers.
"""
from __future__ import annotations

from typing import Any

import node_base
from api_keys.models import SCOPES

# Routes of api/urls.py that are deliberately not part of the API description.
NOT_DESCRIBED = {
    "api-not-found": "the JSON 404 for any other /api/ path",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, **headers: str) -> dict[str, Any]:
    response = _json(_ref("Error"), description)
    if headers:
        response["headers"] = {name: {"schema": {"type": "string"}, "description": text}
                               for name, text in headers.items()}
    return response


UNAUTHORIZED = _error("No API key, or an invalid, revoked or expired one.",
                      **{"WWW-Authenticate": "Basic realm=\"api\": the key may also be sent as basic-auth password"})
FORBIDDEN = _error("The API key lacks the scope this endpoint needs.")
NOT_ALLOWED = _error("Method not allowed.", Allow="the allowed methods (HEAD wherever GET is)")
BAD_REQUEST = _error("The request is malformed or a value is refused; the message says which and why.")
UNREACHABLE = _error("The service node is not reachable (Retry-After), or the messenger is misconfigured.",
                     **{"Retry-After": "seconds to wait, sent only when retrying can help"})
BAD_GATEWAY = _error("The service node refused the request.")
# A POST's body: judged by its Content-Length before any view reads it (api.middleware).
BODY_ERRORS = {"411": _error("A body without Content-Length (chunked); refused unread."),
               "413": _error("The body is larger than the API takes (64 KiB, by its Content-Length); refused unread.")}
AUTH_ERRORS = {"401": UNAUTHORIZED, "403": FORBIDDEN, "405": NOT_ALLOWED}


def _operation(*, summary: str, scope: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "description": f"Scope: `{scope}`.", "responses": {**responses, **AUTH_ERRORS},
            **extra}


RUNNER_NAME = {"name": "name", "in": "path", "required": True, "description": "runner name, e.g. Feed Indexing",
               "schema": {"type": "string", "minLength": 1, "maxLength": 200}}


def _runner_action(summary: str, ok: dict[str, Any]) -> dict:
    return {"post": _operation(
        summary=summary, scope="service:control", parameters=[RUNNER_NAME],
        responses={"200": ok, "400": BAD_REQUEST, "404": _error("No runner of that name."), **BODY_ERRORS,
                   "502": BAD_GATEWAY, "503": UNREACHABLE},
    )}


def _yank_operation(summary: str) -> dict[str, Any]:
    body = {"application/json": {"schema": _ref("YankChange")},
            "application/x-www-form-urlencoded": {"schema": _ref("YankChange")}}
    return {"post": _operation(
        summary=summary, scope="feeds:upload", requestBody={"required": True, "content": body},
        parameters=[{"name": "feed", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}],
        responses={"200": _json(_ref("Yank"), "Done; the release's files."), "400": BAD_REQUEST,
                   "404": _error("No feed of that name, or no files of that release in it."), **BODY_ERRORS},
    )}


NULLABLE_TIME = {"type": "string", "format": "date-time", "nullable": True}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
    "Setting": {
        "type": "object",
        "required": ["name", "type", "value", "default", "isDefault", "live", "description", "updatedAt", "updatedBy"],
        "properties": {
            "name": {"type": "string"},
            "type": {"type": "string", "enum": ["text", "integer", "boolean", "secret"]},
            "value": {"type": "string", "description": "stored value, \"\" for the default; secrets masked"},
            "default": {"type": "string"},
            "isDefault": {"type": "boolean"},
            "live": {"type": "boolean", "description": "applied without a restart"},
            "description": {"type": "string"},
            "updatedAt": NULLABLE_TIME,
            "updatedBy": {"type": "string"},
        },
    },
    "SettingsList": {"type": "object", "required": ["version", "settings"],
                     "properties": {"version": {"type": "integer"},
                                    "settings": {"type": "array", "items": _ref("Setting")}}},
    "SettingChange": {"type": "object", "required": ["name", "value"],
                      "properties": {"name": {"type": "string", "maxLength": 100},
                                     "value": {"type": "string", "description": "\"\" restores the default"},
                                     "confirm": {"type": "string", "description": "\"yes\": needed (with the "
                                                 "settings:messenger-key scope) to change Service.MessengerKey"}}},
    "SettingChanged": {"type": "object", "required": ["name", "changed", "refused", "version", "message"],
                       "properties": {"name": {"type": "string"}, "changed": {"type": "boolean"},
                                      "refused": {"type": "boolean", "description": "stored, but the service "
                                                  "could not apply it (the reason is in message)"},
                                      "version": {"type": "integer"}, "message": {"type": "string"}}},
    "ServiceStatus": {
        "type": "object", "required": ["service", "runners", "logs", "seq"], "additionalProperties": True,
        "properties": {
            "service": {"type": "object", "description": "node, version, uptime, fingerprint, endpoint, "
                        "settingsVersion, messenger counters, subscribers", "additionalProperties": True},
            "runners": {"type": "object", "additionalProperties": _ref("RunnerState")},
            "logs": {"type": "array", "items": {"type": "object"}},
            "heartbeat": {"type": "object", "nullable": True},
            "seq": {"type": "integer"},
        },
    },
    "RunnerState": {"type": "object", "required": ["name", "state"], "additionalProperties": True,
                    "properties": {"name": {"type": "string"},
                                   "state": {"type": "string", "enum": ["idle", "running", "paused", "failed"]},
                                   "lastStartedAt": NULLABLE_TIME, "nextRunAt": NULLABLE_TIME}},
    "Trigger": {
        "type": "object",
        "required": ["id", "kind", "target", "state", "result", "requestedBy", "createdAt", "claimedBy", "claimedAt",
                     "finishedAt"],
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string", "enum": ["feed.reindex", "runner.run"]},
            "target": {"type": "string"},
            "state": {"type": "string", "enum": ["pending", "running", "done", "failed"]},
            "result": {"type": "string"},
            "requestedBy": {"type": "string"},
            "createdAt": {"type": "string", "format": "date-time"},
            "claimedBy": {"type": "string"},
            "claimedAt": NULLABLE_TIME,
            "finishedAt": NULLABLE_TIME,
        },
    },
    "Run": {
        "type": "object",
        "required": ["id", "runner", "startedAt", "finishedAt", "duration", "result", "message", "error", "target",
                     "triggerId", "triggeredBy", "node"],
        "properties": {
            "id": {"type": "integer"},
            "runner": {"type": "string"},
            "startedAt": {"type": "string", "format": "date-time"},
            "finishedAt": NULLABLE_TIME,
            "duration": {"type": "number", "nullable": True, "description": "seconds; null while running"},
            "result": {"type": "string", "enum": ["running", "ok", "failed"]},
            "message": {"type": "string"},
            "error": {"type": "string"},
            "target": {"type": "string", "description": "e.g. the feed of a reindex; \"\" for a whole run"},
            "triggerId": {"type": "integer", "nullable": True},
            "triggeredBy": {"type": "string", "description": "who asked (a user, \"cli\", \"alice (API key "
                            "3)\") or what started it (\"schedule\", \"run now (a messenger request)\")"},
            "node": {"type": "string"},
        },
    },
    "RunHistory": {
        "type": "object", "required": ["runner", "runs", "nextBefore", "retention"],
        "properties": {
            "runner": {"type": "string"},
            "runs": {"type": "array", "items": _ref("Run")},
            "nextBefore": {"type": "integer", "nullable": True,
                           "description": "pass as ?before= for the next older runs; null: no older runs"},
            "retention": {"type": "object", "required": ["days", "runs", "logLines"],
                          "properties": {"days": {"type": "integer"}, "runs": {"type": "integer"},
                                         "logLines": {"type": "integer"}}},
        },
    },
    "RunWithLog": {"allOf": [_ref("Run"), {
        "type": "object", "required": ["log", "logDropped", "logDroppedAt"],
        "properties": {
            "log": {"type": "array", "items": {
                "type": "object", "required": ["at", "level", "logger", "message"],
                "properties": {"at": {"type": "string", "format": "date-time"}, "level": {"type": "string"},
                               "logger": {"type": "string"}, "message": {"type": "string"}}}},
            "logDropped": {"type": "integer", "description": "lines left out (the first and last ones are kept)"},
            "logDroppedAt": {"type": "integer", "nullable": True,
                             "description": "index in `log` where the dropped lines were; null when none"},
        },
    }]},
    "YankChange": {"type": "object", "required": ["project", "version"],
                   "properties": {"project": {"type": "string", "description": "project name (any spelling)"},
                                  "version": {"type": "string", "description": "PEP 440 version of the release"},
                                  "reason": {"type": "string", "maxLength": 1000,
                                             "description": "shown by pip and uv (yank only)"}}},
    "Yank": {"type": "object", "required": ["feed", "project", "version", "yanked", "reason", "files"],
             "properties": {"feed": {"type": "string"}, "project": {"type": "string"},
                            "version": {"type": "string"}, "yanked": {"type": "boolean"},
                            "reason": {"type": "string"},
                            "files": {"type": "array", "items": {"type": "string"}}}},
    "TriggerRequested": {"type": "object", "required": ["trigger", "nudged", "alreadyQueued", "message"],
                         "properties": {"trigger": _ref("Trigger"), "nudged": {"type": "boolean"},
                                        "alreadyQueued": {"type": "boolean", "description": "a Run that found a "
                                                          "pending Run of the runner: that trigger, nothing added"},
                                        "message": {"type": "string"}}},
}

PATHS: dict[str, Any] = {
    "/api/openapi.json": {"get": {"summary": "This description.", "security": [],
                                  "responses": {"200": _json({"type": "object"}, "The OpenAPI description.")}}},
    "/api/settings/list": {"get": _operation(
        summary="Every Advanced Setting (secrets masked).", scope="settings:read",
        parameters=[{"name": "showAll", "in": "query", "required": False,
                     "description": "include hidden settings: true or false (also 1/0, yes/no, any letter case)",
                     "schema": {"type": "boolean", "default": False}}],
        responses={"200": _json(_ref("SettingsList"), "The settings in declaration order."),
                   "400": BAD_REQUEST},
    )},
    "/api/settings/set": {"post": _operation(
        summary="Change one setting: validated, stored, audited (source api) and applied like the page.",
        scope="settings:write",
        description="Scope: `settings:write`; `Service.MessengerKey` also needs `settings:messenger-key` and "
                    "`confirm: \"yes\"` (403, 400 without them).",
        requestBody={"required": True, "content": {
            "application/json": {"schema": _ref("SettingChange")},
            "application/x-www-form-urlencoded": {"schema": _ref("SettingChange")}}},
        responses={"200": _json(_ref("SettingChanged"), "Stored (or already that value)."), "400": BAD_REQUEST,
                   **BODY_ERRORS},
    )},
    "/api/service/status": {"get": _operation(
        summary="The service node's status snapshot: identity, messenger counters, runners, recent log lines.",
        scope="service:read",
        parameters=[{"name": "logs", "in": "query", "required": False, "description": "log lines to include",
                     "schema": {"type": "integer", "minimum": 0, "maximum": 200, "default": 0}}],
        responses={"200": _json(_ref("ServiceStatus"), "The snapshot."), "400": BAD_REQUEST,
                   "502": BAD_GATEWAY, "503": UNREACHABLE},
    )},
    "/api/service/runners/{name}/run": {"post": _operation(
        summary="Run a task runner (even when paused): a durable trigger, then a nudge (queued if the service is "
                "down; a Run while one is pending adds nothing).", scope="service:control",
        parameters=[RUNNER_NAME],
        responses={"202": _json(_ref("TriggerRequested"), "Requested; follow it at /api/triggers/{id}."),
                   "400": BAD_REQUEST, "404": _error("No runner of that name."), **BODY_ERRORS},
    )},
    "/api/service/runners/{name}/pause": _runner_action(
        "Pause a task runner (a run in progress finishes).", _json(_ref("RunnerState"), "Paused.")),
    "/api/service/runners/{name}/resume": _runner_action(
        "Resume a paused task runner.", _json(_ref("RunnerState"), "Resumed.")),
    "/api/service/runners/{name}/history": {"get": _operation(
        summary="A task runner's latest runs, newest first (from the database: answers with the service down).",
        scope="service:read",
        parameters=[RUNNER_NAME,
                    {"name": "limit", "in": "query", "required": False, "description": "runs to return",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                    {"name": "before", "in": "query", "required": False,
                     "description": "only runs older than this run id (the previous answer's nextBefore)",
                     "schema": {"type": "integer", "format": "int64", "minimum": 1}}],
        responses={"200": _json(_ref("RunHistory"), "The runs."), "400": BAD_REQUEST,
                   "404": _error("No runner of that name.")},
    )},
    "/api/service/runners/{name}/history/{id}": {"get": _operation(
        summary="One run of a task runner with its own log lines.", scope="service:read",
        parameters=[RUNNER_NAME, {"name": "id", "in": "path", "required": True,
                                  "schema": {"type": "integer", "format": "int64", "minimum": 1}}],
        responses={"200": _json(_ref("RunWithLog"), "The run and its log."),
                   "404": _error("No runner of that name, or no such run of it (older runs are deleted).")},
    )},
    "/api/feeds/{feed}/reindex": {"post": _operation(
        summary="Reindex a feed: a durable trigger, then a nudge (queued if the service is down).",
        scope="feeds:reindex",
        parameters=[{"name": "feed", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}],
        responses={"202": _json(_ref("TriggerRequested"), "Requested; follow it at /api/triggers/{id}."),
                   "400": BAD_REQUEST, "404": _error("No feed of that name."), **BODY_ERRORS},
    )},
    "/api/feeds/{feed}/yank": _yank_operation(
        "Yank a release (PEP 592): its files stay listed and downloadable, marked yanked with the reason, and "
        "resolvers skip them unless the version is pinned with =="),
    "/api/feeds/{feed}/unyank": _yank_operation("Clear the yank of a release."),
    "/api/triggers/{id}": {"get": _operation(
        summary="One trigger (a reindex or run request) and what became of it.", scope="feeds:read or feeds:reindex",
        parameters=[{"name": "id", "in": "path", "required": True,
                     "schema": {"type": "integer", "format": "int64", "minimum": 1}}],
        responses={"200": _json(_ref("Trigger"), "The trigger."),
                   "404": _error("No such trigger, or one the key's owner may not see (not their own, and no "
                                 "view_service_status permission).")},
    )},
    "/metrics": {"get": {
        "summary": "Prometheus metrics of this web process and of the service node.",
        "description": "Scope: `metrics:read`, or a client address in the setting Metrics.AllowedIps.",
        "responses": {"200": {"description": "Prometheus text format 0.0.4 "
                              "(Content-Type `text/plain; version=0.0.4; charset=utf-8`).",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "401": UNAUTHORIZED, "403": FORBIDDEN, "405": NOT_ALLOWED},
    }},
}

DESCRIPTION: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "Package server API",
        "version": node_base.__version__,
        "description": "Settings, service control, feed reindexing and metrics. Every error is JSON "
        "`{\"error\": \"...\"}`, unknown paths (404) and server errors (500) included; HEAD is answered "
        "wherever GET is. Scopes: " + "; ".join(f"`{name}` ({text})" for name, text in SCOPES) + ".",
    },
    "servers": [{"url": "/"}],
    "security": [{"apiKeyHeader": []}, {"basicAuth": []}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-ApiKey"},
            "basicAuth": {"type": "http", "scheme": "basic",
                          "description": "user name `api`, the API key as password (what pip and twine send)"},
        },
        "schemas": SCHEMAS,
    },
}
