"""The app built from the environment, as an ASGI application: `app.asgi:app`.

Each worker process of `python -m app serve` with WORKERS > 1 imports this module (and so
could `hypercorn app.asgi:app`). The garbage collector is tuned as in the one-process
`serve`: everything loaded so far is frozen out of its view; and Hypercorn is patched as
there (app/hypercorn_fixes.py)."""

from __future__ import annotations

from app.__main__ import tune_garbage_collector
from app.hypercorn_fixes import end_websocket_pings_at_close, limit_send_waits
from app.main import create_app

app = create_app()
tune_garbage_collector()
end_websocket_pings_at_close()  # for `hypercorn app.asgi:app` too
limit_send_waits(app.extensions["runtime"].settings.send_timeout_seconds)
