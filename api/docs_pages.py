"""/docs/openapi.json, and the pages that render it: Swagger UI at /docs and ReDoc at
/docs/redoc. Their scripts and styles are served by the app itself from the files the
drf-spectacular-sidecar package ships (Swagger UI's dist and ReDoc's standalone bundle, kept
current upstream), so the docs work with no network; that package's Django dependency is
installed but never imported (only its files are read). Swagger UI's online validator badge
is off."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sanic import Blueprint, Request, html, json
from sanic.response import HTTPResponse, JSONResponse

bp = Blueprint("docs", url_prefix="/docs")

ASSETS = "/docs/assets"
DOCUMENT = "/docs/openapi.json"


def sidecar_files() -> Path:
    """Where the package keeps its static files, found without importing it."""
    spec = importlib.util.find_spec("drf_spectacular_sidecar")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("drf-spectacular-sidecar is not installed (it ships the docs' UI)")
    return Path(next(iter(spec.submodule_search_locations))) / "static" / "drf_spectacular_sidecar"


FILES = sidecar_files()
bp.static("/assets/swagger-ui", FILES / "swagger-ui-dist", name="swagger_ui_assets")
bp.static("/assets/redoc", FILES / "redoc" / "bundles", name="redoc_assets")

SWAGGER_UI = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Alphabet Events API</title>
  <link rel="stylesheet" href="{ASSETS}/swagger-ui/swagger-ui.css">
  <link rel="icon" href="{ASSETS}/swagger-ui/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{ASSETS}/swagger-ui/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "{DOCUMENT}", dom_id: "#swagger-ui",
                                 deepLinking: true, persistAuthorization: true,
                                 validatorUrl: null}});
  </script>
</body>
</html>
"""

REDOC = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Alphabet Events API</title>
</head>
<body>
  <redoc spec-url="{DOCUMENT}"></redoc>
  <script src="{ASSETS}/redoc/redoc.standalone.js"></script>
</body>
</html>
"""


@bp.get("/openapi.json")
async def document(request: Request) -> JSONResponse:
    return json(request.app.ctx.openapi)


@bp.get("/")
async def swagger_ui(request: Request) -> HTTPResponse:
    return html(SWAGGER_UI)


# ReDoc's bundle shows its vendor's logo from a CDN: images from elsewhere are not loaded.
OWN_IMAGES = {"Content-Security-Policy": "img-src 'self' data:"}


@bp.get("/redoc")
async def redoc(request: Request) -> HTTPResponse:
    return html(REDOC, headers=OWN_IMAGES)
