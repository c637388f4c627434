"""/health, the OpenAPI document and the offline Swagger UI."""

from __future__ import annotations

import logging
import re

import pytest

from app import __version__
from app.main import create_app

FULL_CONTROL = "anyone who can reach this port has full control"


async def test_health(client):
    body = await (await client.get("/health")).get_json()
    warnings = body.pop("warnings")
    assert body == {"status": "ok", "version": __version__, "runner_mode": "InProcess", "auth_mode": "None"}
    assert isinstance(warnings, list)  # the default settings: see the next test


@pytest.mark.parametrize("bind, auth_mode, warned", [
    ("0.0.0.0:9000", "none", True),  # the defaults
    ("[::]:9000", "none", True),
    ("192.0.2.7:9000", "none", True),
    ("server.example.com:9000", "none", True),  # a name may resolve to any interface
    ("127.0.0.1:9000", "none", False),
    ("[::1]:9000", "none", False),
    ("localhost:9000", "none", False),
    ("unix:/tmp/runtime.sock", "none", False),
    ("0.0.0.0:9000", "admin", False),
])
async def test_no_auth_on_a_reachable_address_is_warned_about(settings, caplog, monkeypatch, bind, auth_mode, warned):
    # create_app() installs its own root log handler, which would drop caplog's.
    monkeypatch.setattr("app.main.configure_logging", lambda level: None)
    caplog.set_level(logging.WARNING, logger="app.auth")
    changes = {"auth_admin_email": "admin@example.com", "auth_admin_password": "admin-password-1"} \
        if auth_mode != "none" else {}
    app = create_app(settings.replace(bind=bind, auth_mode=auth_mode, **changes))
    logged = [r for r in caplog.records if r.name == "app.auth" and FULL_CONTROL in r.getMessage()]
    async with app.test_app():
        warnings = (await (await app.test_client().get("/health")).get_json())["warnings"]
    if warned:
        assert len(logged) == 1 and logged[0].levelno == logging.WARNING, caplog.text
        assert bind in logged[0].getMessage()
        assert warnings == [logged[0].getMessage()]
    else:
        assert not logged and warnings == []


async def test_openapi_lists_every_v1_route_with_schemas(app, client):
    doc = await (await client.get("/api-doc/openapi.json")).get_json()
    assert doc["openapi"].startswith("3.1")
    # Rules that differ only in parameter names are one documented path (one URL).
    by_shape = {re.sub(r"\{[^}]+\}", "{}", path): path for path in doc["paths"]}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}").replace("path:", "")
        path = by_shape.get(re.sub(r"\{[^}]+\}", "{}", path), path)
        assert path in doc["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = doc["paths"][path][method.lower()]
            if method in ("POST", "PUT", "PATCH") and not path.endswith(("/cancel", "/approve")):  # no body
                assert "requestBody" in operation, (method, path)
            responses = operation["responses"]
            ok = [v for k, v in responses.items() if k.startswith("2")]
            redirect = responses.get("302")
            assert ok or redirect, (method, path)
            assert ok and ("content" in ok[0] or "204" in responses) or "Location" in redirect["headers"], (method, path)
            error = responses["404"]["content"]["application/json"]["schema"]
            assert set(error["properties"]) == {"error", "message", "status"}, (method, path)


async def test_swagger_ui_is_served_from_local_assets(client):
    page = await (await client.get("/swagger-ui/")).get_data(as_text=True)
    assert "/swagger-ui/assets/swagger-ui-bundle.js" in page and "http" not in page.split("<body>")[1]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "init.js"):
        response = await client.get(f"/swagger-ui/assets/{asset}")
        assert response.status_code == 200 and len(await response.get_data()) > 40
    assert (await client.get("/swagger-ui/assets/../../app/config.py")).status_code == 404
