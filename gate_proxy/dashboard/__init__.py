"""The reviewer dashboard at /dashboard: plain HTML, CSS and JS served by the gate itself.

Routes (all under /dashboard; JSON unless noted):
    GET  /dashboard                              the page (HTML)
    GET  /dashboard/static/{name}                app.js, app.css, favicon.svg
    POST /dashboard/login                        JSON or form {key}: sets the session cookie
    POST /dashboard/logout                       X-CSRF-Token
    GET  /dashboard/api/session                  who is signed in, and the CSRF token
    GET  /dashboard/api/intents?status=          the queue (default pending_approval; "all")
    GET  /dashboard/api/intents/{id}             one intent and its full audit trail
    POST /dashboard/api/intents/{id}/approve     X-CSRF-Token, {reviewHash, note?}
    POST /dashboard/api/intents/{id}/reject      X-CSRF-Token, {reviewHash, reason}
    GET  /dashboard/events                       server-sent events (text/event-stream)
"""

from typing import TYPE_CHECKING

from aiohttp import web

from gate_proxy.dashboard.events import EventHub
from gate_proxy.dashboard.routes import Dashboard, handlers
from gate_proxy.dashboard.security import add_security_headers
from gate_proxy.dashboard.sessions import SessionStore

if TYPE_CHECKING:
    from gate_proxy.gate import Gate

DASHBOARD = web.AppKey("dashboard", Dashboard)


def add_dashboard(app: web.Application, gate: "Gate") -> None:
    """Register every dashboard route on the control API app, and subscribe to intent events."""
    settings = gate.settings
    sessions = SessionStore(gate.store, settings.session_ttl_s, settings.session_idle_s)
    dashboard = Dashboard(gate, sessions)
    hub = dashboard.hub = EventHub(dashboard.render)
    # Told only while a live-queue stream is open: with none, nobody re-reads an intent
    # after its outcome just to show it to no one (usecases/events.py: audience).
    watching = lambda: len(hub) > 0  # noqa: E731
    gate.usecases.events.subscribe(dashboard.on_event, active=watching)
    # Intents decided by other processes on the same store reach the live queue too.
    gate.usecases.events.subscribe_remote(dashboard.on_event, watching)
    app[DASHBOARD] = dashboard
    app.on_response_prepare.append(add_security_headers)

    async def close_streams(_: web.Application) -> None:
        # Runs before aiohttp waits for open connections: end the streams so stop is quick.
        assert dashboard.hub is not None
        dashboard.hub.close()

    app.on_shutdown.append(close_streams)

    h = handlers(dashboard)
    r = app.router
    r.add_get("/dashboard", h["page"])
    r.add_get("/dashboard/", h["page"])
    r.add_get("/dashboard/static/{name}", h["static"])
    r.add_post("/dashboard/login", h["login"])
    r.add_post("/dashboard/logout", h["logout"])
    r.add_get("/dashboard/api/session", h["session"])
    r.add_get("/dashboard/api/intents", h["intents"])
    r.add_get("/dashboard/api/intents/{intent_id}", h["intent"])
    r.add_post("/dashboard/api/intents/{intent_id}/{action:approve|reject}", h["decide"])
    r.add_get("/dashboard/events", h["events"])
