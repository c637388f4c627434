"""The app factory: configuration, extensions, routes, errors and the start/stop hooks."""

from __future__ import annotations

import time

from quart import Quart
from quart_schema import QuartSchema

from app import __version__
from app.api import register_blueprints
from app.api.cors import apply_http_cors, register_websocket_origin_check
from app.api.json_body import JsonRequest
from app.api.openapi import RuntimeOpenAPIProvider
from app.api.request_hooks import install_request_hooks
from app.api.responses import install_json_responses
from app.api.schema_validation import install as install_schema_validation
from app.auth.middleware import register_websocket_auth
from app.auth.service import AuthService
from app.auth.stream_watch import RevocationChecks
from app.config import Settings, reveal
from app.db import apply_migrations, close_db, open_db
from app.errors import register_error_handlers
from app.log_setup import assign_websocket_request_id, configure_logging
from app.secrets import SecretBox, load_or_create_key_file
from app.wiring import Runtime


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)

    app = Quart(__name__, static_folder=None)
    app.request_class = JsonRequest  # every JSON body through one strict parser
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config["STARTED_AT"] = time.monotonic()
    box = SecretBox.from_settings(reveal(settings.secrets_key), settings.data_dir)
    runtime = Runtime.build(settings, box)
    app.extensions["runtime"] = runtime  # reached through app.wiring.current_runtime(), settings included

    plain_make_response = app.make_response
    QuartSchema(
        app,
        openapi_path="/api-doc/openapi.json",
        swagger_ui_path=None,  # served from local assets by app/api/docs.py
        redoc_ui_path=None,
        scalar_ui_path=None,
        info={"title": "Agent runtime API", "version": __version__},
        openapi_provider_class=RuntimeOpenAPIProvider,
    )
    install_json_responses(app, plain_make_response)
    install_schema_validation()  # one TypeAdapter per model, not one per request
    auth = AuthService(settings, reveal(settings.jwt_secret) or load_or_create_key_file(settings.data_dir, "jwt.key", "JWT_SECRET"))
    app.extensions["auth"] = auth
    app.extensions["stream_checks"] = RevocationChecks()  # shared by the app's open streams
    install_request_hooks(app, auth, runtime.metrics)  # request id, metrics, auth, security headers
    # First of the WebSocket hooks, so even a handshake refused by auth has an id.
    app.before_websocket(assign_websocket_request_id)
    register_websocket_origin_check(app, settings.cors_origins)  # before auth: a refused origin is told so
    register_websocket_auth(app, auth)
    register_blueprints(app)
    register_error_handlers(app)
    apply_http_cors(app, settings.cors_origins)

    @app.before_serving
    async def _start() -> None:
        if settings.auto_migrate:
            await apply_migrations(settings)
        await open_db(settings)
        await auth.ensure_admin()
        await runtime.start()

    @app.after_serving
    async def _stop() -> None:
        await runtime.stop()
        await close_db()

    return app
