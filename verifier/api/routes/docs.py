"""``/docs``: Swagger UI for the API's OpenAPI schema, its scripts and styles served by the API.

FastAPI's own page loads Swagger UI from a CDN: a browser offline, or a site whose policy
forbids scripts from other hosts, saw a blank page. Here the assets come from the
``swagger-ui-bundle-v2`` package (Swagger UI 5, which reads OpenAPI 3.1) under
``DOCS_ASSETS_PATH``, and the page names no other host. ReDoc (``/redoc``) is not served: no
package ships it that the project depends on.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/docs"
DOCS_ASSETS_PATH = "/docs/assets"
SWAGGER_UI_PARAMETERS = {
    # Swagger UI would send the schema to the public validator and show its badge.
    "validatorUrl": None,
    "deepLinking": True,
}


def add_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and its assets on ``app`` (made with ``docs_url=None``)."""
    app.mount(
        DOCS_ASSETS_PATH, StaticFiles(directory=Path(str(swagger_ui_path))), name="docs-assets"
    )

    @app.get(DOCS_PATH, include_in_schema=False)
    async def read_docs(request: Request) -> HTMLResponse:
        """Swagger UI for ``/openapi.json``, every asset from this API."""
        root = request.scope.get("root_path", "").rstrip("/")
        assets = f"{root}{DOCS_ASSETS_PATH}"
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
