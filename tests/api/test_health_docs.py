"""/health, the OpenAPI document and the offline Swagger UI."""

from __future__ import annotations

from app import __version__


async def test_health(client):
    body = await (await client.get("/health")).get_json()
    assert body == {"status": "ok", "version": __version__, "runner_mode": "InProcess", "auth_mode": "None"}


async def test_openapi_lists_every_v1_route_with_schemas(app, client):
    doc = await (await client.get("/api-doc/openapi.json")).get_json()
    assert doc["openapi"].startswith("3.1")
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/v1/"):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}").replace("path:", "")
        assert path in doc["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = doc["paths"][path][method.lower()]
            if method in ("POST", "PUT", "PATCH") and not path.endswith("/cancel"):  # cancel has no body
                assert "requestBody" in operation, (method, path)
            responses = operation["responses"]
            ok = [v for k, v in responses.items() if k.startswith("2")]
            assert ok, (method, path)
            assert "content" in ok[0] or "204" in responses, (method, path)
            error = responses["404"]["content"]["application/json"]["schema"]
            assert set(error["properties"]) == {"error", "status"}, (method, path)


async def test_swagger_ui_is_served_from_local_assets(client):
    page = await (await client.get("/swagger-ui/")).get_data(as_text=True)
    assert "/swagger-ui/assets/swagger-ui-bundle.js" in page and "http" not in page.split("<body>")[1]
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "init.js"):
        response = await client.get(f"/swagger-ui/assets/{asset}")
        assert response.status_code == 200 and len(await response.get_data()) > 40
    assert (await client.get("/swagger-ui/assets/../../app/config.py")).status_code == 404
