"""Browser-facing protections for the dashboard: headers, same-origin checks, cookie flags."""

from urllib.parse import urlsplit

from aiohttp import web

from gate_proxy.errors import NotPermitted

PREFIX = "/dashboard"

# No inline script or style anywhere: the page loads app.js and app.css from 'self' only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    # Intent data and CSRF tokens must not linger in shared or disk caches.
    "Cache-Control": "no-store",
}


def is_dashboard_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: every dashboard answer, errors and the stream included."""
    if is_dashboard_path(request.path):
        for name, value in HEADERS.items():
            response.headers[name] = value


def is_https(request: web.Request) -> bool:
    # A TLS-terminating proxy in front says so; trusting it can only add the Secure flag.
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


def require_same_origin(request: web.Request) -> None:
    """Refuse state changes that a browser says came from another site.

    Defence in depth next to SameSite=Strict and the CSRF token; it also covers sign-in,
    which has no session (and so no token) yet.
    """
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        raise NotPermitted("cross_site_request", "cross-site requests are refused")
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not a browser, or an old one: the token and SameSite still apply
    if origin == "null" or urlsplit(origin).netloc.lower() != request.host.lower():
        raise NotPermitted("cross_site_request", "request origin does not match this gate")
