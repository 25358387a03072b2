"""The pages' sign-in without a browser: cookie flags, CSRF, pages kept out of the OpenAPI
document, the development sign-in refused in production, and production's OpenID Connect
authorization code flow with PKCE against a fake identity provider."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx

from api.app import create_app
from loyalty.core.settings import Settings
from tests.api.fake_identity_provider import running
from tests.harness import api as harness_api

PAGES = {"/wallet", "/admin", "/signin", "/signout"}
PAGE_PREFIXES = ("/admin/", "/checkout/", "/signin/", "/static/")


def _cookie(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


def _jar(**cookies: str) -> dict[str, str]:
    """A Cookie header (per-request cookies= is deprecated in httpx; the flow cookie is Secure,
    which a jar would not send to http://loyalty.test)."""
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


def _value(set_cookie: str) -> str:
    return set_cookie.split(";", 1)[0].split("=", 1)[1].strip('"')


async def test_pages_are_not_api_operations(api: harness_api.Api) -> None:
    paths = (await api.http.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p in PAGES or p.startswith(PAGE_PREFIXES)]


async def test_dev_sign_in_sets_an_httponly_samesite_cookie_after_the_csrf_check(
    api: harness_api.Api,
) -> None:
    form = await api.http.get("/signin")
    csrf_cookie = _cookie(form, "loyalty_csrf")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    cookies = _jar(loyalty_csrf=_value(csrf_cookie))
    fields = {"user_id": "user-p1", "scope": "wallet:self"}
    refused = await api.http.post("/signin", data=fields, headers=cookies)
    assert refused.status_code == 403 and "CSRF token is missing" in refused.text
    assert "loyalty_session" not in refused.headers.get("set-cookie", "")
    forged = await api.http.post(
        "/signin", data={**fields, "csrf_token": _value(csrf_cookie)}, headers=cookies
    )
    assert forged.status_code == 403  # the cookie's value alone, unsigned, is not the token
    signed = await api.http.post(
        "/signin", data={**fields, "csrf_token": token.group(1)}, headers=cookies
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/wallet"
    session = _cookie(signed, "loyalty_session").lower()
    assert "httponly" in session and "samesite=lax" in session and "secure" not in session


def _production(settings: Settings, **changes: object) -> Settings:
    return Settings(
        **{
            **settings.model_dump(),
            "environment": "production",
            "stripe_api_key": "sk_test_tests",
            "stripe_webhook_secret": "whsec_production_test",
            "session_secret": "a-production-session-secret-for-tests",
            **changes,
        }
    )


async def test_production_signs_in_with_oidc_code_and_pkce(settings: Settings) -> None:
    async with running(settings.jwt_audience) as idp:
        production = _production(
            settings,
            jwt_jwks_url=f"{idp.url}/jwks",
            jwt_issuer=idp.issuer,
            oidc_discovery_url=f"{idp.url}/.well-known/openid-configuration",
            oidc_client_id="loyalty-backoffice",
        )
        async with harness_api.in_process(create_app(production)) as http:
            # the development form does not exist in production
            dev = await http.post("/signin", data={"user_id": "x", "scope": "loyalty:admin"})
            assert dev.status_code == 404

            start = await http.get("/signin", params={"next": "/admin"})
            assert start.status_code == 303
            target = urlsplit(start.headers["location"])
            query = parse_qs(target.query)
            assert f"{target.scheme}://{target.netloc}{target.path}" == f"{idp.url}/authorize"
            assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
            assert "code_verifier" not in query
            flow = _cookie(start, "loyalty_oidc_flow")
            assert "secure" in flow.lower() and "httponly" in flow.lower()

            async with httpx.AsyncClient() as browser:
                approved = await browser.get(start.headers["location"])
            assert approved.status_code == 302
            callback = urlsplit(approved.headers["location"])
            params = parse_qs(callback.query)
            cookies = _jar(loyalty_oidc_flow=_value(flow))

            wrong_state = await http.get(
                callback.path,
                params={"code": params["code"][0], "state": "forged"},
                headers=cookies,
            )
            assert wrong_state.status_code == 400
            done = await http.get(f"{callback.path}?{callback.query}", headers=cookies)
            assert done.status_code == 303 and done.headers["location"] == "/admin"
            assert idp.token_requests[-1]["verifier"]  # the PKCE verifier was sent
            session = _cookie(done, "loyalty_session")
            assert all(flag in session.lower() for flag in ("secure", "httponly", "samesite=lax"))

            page = await http.get("/admin", headers=_jar(loyalty_session=_value(session)))
            assert page.status_code == 200 and "Backoffice" in page.text
            assert "ops-oidc" in page.text

            # the identity provider's token for a customer does not open the backoffice
            idp.scope = "wallet:self"
            again = await http.get("/signin", params={"next": "/admin"})
            async with httpx.AsyncClient() as browser:
                approved = await browser.get(again.headers["location"])
            done = await http.get(
                approved.headers["location"].replace("http://loyalty.test", ""),
                headers=_jar(loyalty_oidc_flow=_value(_cookie(again, "loyalty_oidc_flow"))),
            )
            customer = _value(_cookie(done, "loyalty_session"))
            refused = await http.get("/admin", headers=_jar(loyalty_session=customer))
            assert refused.status_code == 403


async def test_sign_in_goes_on_only_to_a_page_of_this_site(api: harness_api.Api) -> None:
    form = await api.http.get("/signin")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    for target, landing in [
        ("/admin/tiers", "/admin/tiers"),
        ("https://evil.example/", "/wallet"),
        ("//evil.example/", "/wallet"),
        ("/\\evil.example/", "/wallet"),
    ]:
        answer = await api.http.post(
            "/signin",
            data={
                "user_id": "u-2",
                "scope": "wallet:self",
                "next": target,
                "csrf_token": token.group(1),
            },
        )
        assert (answer.status_code, answer.headers["location"]) == (303, landing)
