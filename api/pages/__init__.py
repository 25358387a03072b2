"""Server-rendered web pages: the customer's Wallet tab (/wallet), the storefront's points step
(/checkout/{bookingId}), the backoffice (/admin) and sign-in. Jinja2 templates and a little
plain JavaScript, served by the API's own process with the API's tokens and scope rules; every
page calls the same domain and application functions as the API. None of it is in the OpenAPI
document (these are pages, not API operations)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.pages import admin, admin_config, checkout, oidc, signin, wallet
from api.pages.render import HERE, render
from api.pages.session import CsrfRefused, PageForbidden, SignInRequired


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (signin, oidc, wallet, checkout, admin, admin_config):
        app.include_router(module.router)

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return RedirectResponse(f"/signin?next={exc.next_path}", status_code=303)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, exc: CsrfRefused) -> Response:
        # A form posted by a browser gets a page; the checkout page's script, the JSON error.
        if request.headers.get("content-type", "").startswith("application/json"):
            return JSONResponse(exc.to_dict(), status_code=403)
        return await render(request, "error.html", 403, title="Form expired", message=exc.message)

    @app.exception_handler(PageForbidden)
    async def _forbidden(request: Request, exc: PageForbidden) -> Response:
        return await render(request, "error.html", 403, title="Not allowed", message=str(exc))
