"""Dashboard HTTP handlers: sign-in, the queue, decisions, the audit trail, the live stream."""

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from gate_proxy.api.errors import HttpError
from gate_proxy.api.http import json_response, read_json
from gate_proxy.clock import utc_iso
from gate_proxy.core.intents import Intent, Status
from gate_proxy.dashboard.events import EventHub, sse_message
from gate_proxy.dashboard.security import is_https, require_same_origin
from gate_proxy.dashboard.sessions import Session, SessionStore
from gate_proxy.dashboard.views import audit_view, dashboard_view, voters_of
from gate_proxy.errors import GateError, NotPermitted, Unauthenticated, invalid
from gate_proxy.keys import hash_key
from gate_proxy.principal import Principal
from gate_proxy.usecases import UseCases

if TYPE_CHECKING:
    from gate_proxy.gate import Gate

COOKIE = "gate_dashboard"
COOKIE_PATH = "/dashboard"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "dashboard"
STATIC_TYPES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "app.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
MAX_KEY_LENGTH = 512
MAX_TEXT = 2000
LIST_LIMIT = 200


@dataclass
class Dashboard:
    gate: "Gate"
    sessions: SessionStore
    hub: EventHub | None = None

    @property
    def usecases(self) -> UseCases:
        return self.gate.usecases

    def held_until(self, intent_id: str) -> str | None:
        runtime = self.gate.runtime  # created after the API starts
        return runtime.held.held_until(intent_id) if runtime is not None else None

    async def render(self, intent: Intent, *, approvals: int | None = None) -> dict[str, Any]:
        voters = await voters_of(self.usecases.store, intent)
        return dashboard_view(
            intent, held_until=self.held_until(intent.id), voters=voters, approvals=approvals
        )

    async def on_event(
        self, event: str, intent: Intent, actor: str, *, approvals: int | None = None
    ) -> None:
        # Only intents that ever waited for a human belong on the dashboard (they alone get
        # an expiry); auto-approved or blocked traffic would only be noise in the stream.
        if self.hub is not None and intent.expires_at:
            await self.hub.on_event(event, intent, actor, approvals=approvals)

    async def reviewer(self, request: web.Request) -> tuple[Session, Principal]:
        """The signed-in reviewer; the key is re-checked each time (revocation bites at once)."""
        session = await self.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            raise Unauthenticated("not_signed_in", "sign in to the dashboard")
        try:
            principal = await self.usecases.agents.authenticate_hash(session.key_hash)
        except GateError as exc:
            await self.sessions.drop_key(session.key_hash)
            raise Unauthenticated("session_ended", f"signed out: {exc.message}") from exc
        if not principal.can_review or principal.id != session.principal_id:
            await self.sessions.drop(session)
            raise Unauthenticated("session_ended", "signed out: this key may no longer review")
        return session, principal

    async def checked_write(self, request: web.Request) -> tuple[Session, Principal]:
        """A state change: signed in, same origin, and the session's CSRF token."""
        require_same_origin(request)
        session, principal = await self.reviewer(request)
        if not session.csrf_matches(request.headers.get("X-CSRF-Token")):
            raise NotPermitted("csrf_failed", "missing or wrong X-CSRF-Token")
        return session, principal


def _session_view(dashboard: Dashboard, session: Session, principal: Principal) -> dict[str, Any]:
    return {
        "principal": {"id": principal.id, "name": principal.name, "role": principal.role.value},
        "csrfToken": session.csrf_token,
        "expiresInSeconds": round(dashboard.sessions.expires_in(session)),
        "serverTime": utc_iso(),
    }


def _set_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    # No max-age: a browser session cookie; the server-side TTLs decide how long it works.
    response.set_cookie(
        COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


def _clear_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.del_cookie(
        COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict", secure=is_https(request)
    )


def _text(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise invalid(f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise invalid(f"{name} must be a string of at most {MAX_TEXT} characters")
    return value.strip()


def handlers(dashboard: Dashboard) -> dict[str, Any]:
    sessions = dashboard.sessions
    static_cache: dict[str, bytes] = {}

    def static_bytes(name: str) -> bytes:
        if name not in static_cache:
            static_cache[name] = (STATIC_DIR / name).read_bytes()
        return static_cache[name]

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=static_bytes("index.html"), content_type="text/html")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_TYPES:  # a fixed list: no path is ever built from the URL
            raise web.HTTPNotFound()
        return web.Response(body=static_bytes(name), content_type=STATIC_TYPES[name])

    async def login(request: web.Request) -> web.Response:
        require_same_origin(request)
        if request.query:
            # Keys never travel in a URL (logs, history, Referer): refuse rather than use it.
            raise invalid("sign in with the key in the request body, never in the URL")
        is_form = request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        )
        if is_form:
            form = await request.post()
            key = form.get("key")
        else:
            key = (await read_json(request)).get("key")
        try:
            if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH:
                raise Unauthenticated("unauthorized", "a valid reviewer or admin key is required")
            key = key.strip()
            principal = await dashboard.usecases.agents.authenticate(key)
            if not principal.can_review:
                raise NotPermitted(
                    "agents_cannot_sign_in", "agent keys cannot sign in to the dashboard"
                )
        except GateError as exc:
            if is_form:  # a plain form post: back to the page, with no key in the URL
                raise web.HTTPSeeOther(f"/dashboard?login={exc.error}") from exc
            raise
        token, session = await sessions.create(hash_key(key), principal.id)
        if is_form:
            response = web.Response(status=303, headers={"Location": "/dashboard"})
        else:
            response = json_response(_session_view(dashboard, session, principal))
        _set_cookie(request, response, token)
        return response

    async def logout(request: web.Request) -> web.Response:
        require_same_origin(request)
        session = await sessions.get(request.cookies.get(COOKIE), touch=False)
        if session is not None:
            if not session.csrf_matches(request.headers.get("X-CSRF-Token")):
                raise NotPermitted("csrf_failed", "missing or wrong X-CSRF-Token")
            await sessions.drop(session)
        response = web.Response(status=204)
        _clear_cookie(request, response)
        return response

    async def session_info(request: web.Request) -> web.Response:
        session, principal = await dashboard.reviewer(request)
        return json_response(_session_view(dashboard, session, principal))

    async def list_intents(request: web.Request) -> web.Response:
        _, principal = await dashboard.reviewer(request)
        status = request.query.get("status", Status.PENDING.value)
        intents = await dashboard.usecases.review.list_intents(
            principal, None if status == "all" else status, LIST_LIMIT
        )
        views = [await dashboard.render(intent) for intent in intents]
        return json_response({"intents": views, "serverTime": utc_iso()})

    async def intent_detail(request: web.Request) -> web.Response:
        _, principal = await dashboard.reviewer(request)
        intent_id = request.match_info["intent_id"]
        intent = await dashboard.usecases.review.get_intent(principal, intent_id)
        events = await dashboard.usecases.review.audit_trail(principal, intent_id)
        return json_response(
            {
                "intent": await dashboard.render(intent),
                "audit": audit_view(events),
                "serverTime": utc_iso(),
            }
        )

    async def decide(request: web.Request) -> web.Response:
        _, principal = await dashboard.checked_write(request)
        if request.content_type != "application/json":
            raise HttpError(415, "unsupported_media_type", "send application/json")
        intent_id = request.match_info["intent_id"]
        action = request.match_info["action"]
        body = await read_json(request)
        # Bound to what the reviewer saw: the dashboard always sends the displayed hash.
        expected = _text(body, "reviewHash", required=True)
        review = dashboard.usecases.review
        approvals = None
        if action == "approve":
            note = _text(body, "note", required=False)
            approval = await review.approve(principal, intent_id, note=note, expected_hash=expected)
            intent, approvals = approval.intent, approval.approvals
            if intent.status == Status.PENDING:
                # A vote short of N: no transition is published, so tell the others.
                await dashboard.on_event(
                    "approval_vote", intent, principal.name, approvals=approvals
                )
        else:
            reason = _text(body, "reason", required=True)
            intent = await review.reject(
                principal, intent_id, reason=reason, expected_hash=expected
            )
        return json_response({"intent": await dashboard.render(intent, approvals=approvals)})

    async def events(request: web.Request) -> web.StreamResponse:
        session, principal = await dashboard.reviewer(request)
        hub = dashboard.hub
        assert hub is not None
        heartbeat = max(0.05, float(dashboard.gate.settings.dashboard_heartbeat_s))
        response = web.StreamResponse(headers={"X-Accel-Buffering": "no"})
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
        subscriber = hub.subscribe()
        token = request.cookies.get(COOKIE)
        try:
            await response.prepare(request)
            hello = {"principal": principal.name, "liveClients": len(hub), "at": utc_iso()}
            await response.write(b"retry: 3000\n\n" + sse_message("hello", hello))
            while not hub.closed:
                try:
                    message = await asyncio.wait_for(subscriber.queue.get(), timeout=heartbeat)
                except TimeoutError:
                    message = sse_message("heartbeat", {"at": utc_iso()})
                if message is None or subscriber.overflowed or hub.closed:
                    break
                # The session is checked before every write, so a sign-out, an expiry
                # or a revoked key ends the stream within one heartbeat.
                if not session.same_as(await sessions.get(token)):
                    await response.write(sse_message("signed_out", {"reason": "session ended"}))
                    break
                try:
                    await dashboard.reviewer(request)
                except GateError as exc:
                    await response.write(sse_message("signed_out", {"reason": exc.message}))
                    break
                await response.write(message)
        except (ConnectionError, RuntimeError):
            pass  # the browser went away
        finally:
            hub.unsubscribe(subscriber)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await response.write_eof()
        return response

    return {
        "page": page,
        "static": static,
        "login": login,
        "logout": logout,
        "session": session_info,
        "intents": list_intents,
        "intent": intent_detail,
        "decide": decide,
        "events": events,
    }
