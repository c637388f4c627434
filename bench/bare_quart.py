"""The reference for bench/rest_path.py: a bare Quart app with one route, served by
Hypercorn with our hypercorn.toml (uvloop worker class, access log on), so the figure
is what the framework and server alone cost per request.

    .venv/bin/python -m hypercorn -c hypercorn.toml -k uvloop -b 127.0.0.1:8001 bench.bare_quart:app
"""

from quart import Quart

app = Quart(__name__)


@app.get("/health")
async def health():
    return {"status": "ok"}
