"""Who is told when an intent or an agent changes: held requests, the dashboard, webhooks.

Two audiences, one object:
- *waiters*: a held proxy request waits for its intent's next decision (or its agent's
  status change) on a future, keyed by intent id or ``agent:<id>``;
- *listeners*: subscribers (dashboard, webhooks, Slack) are told of every new intent and
  every transition, as background tasks, so a slow one never delays a decision, and only
  when someone listens: a subscription may name the events it wants, say whether it
  listens right now (``active``: an open dashboard stream) and whether an intent concerns
  it (``concerns``: a webhook registered for it). Whoever would read the store only to tell
  a listener (executions.record_outcome re-reads the intent) asks ``audience`` first.
"""

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from gate_proxy.core.intents import Intent

Listener = Callable[[str, Intent, str], Awaitable[None]]
# intent id -> whether the change of this intent concerns the listener (asked after the
# change was committed, so a read it makes sees it)
Concerns = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Subscription:
    listener: Listener
    events: frozenset[str] | None = None  # None: every event
    active: Callable[[], bool] | None = None  # None: always listening
    concerns: Concerns | None = None  # None: every intent

    def wants(self, event: str) -> bool:
        return (self.events is None or event in self.events) and (
            self.active is None or self.active()
        )


Waiters = asyncio.Future[Any] | set[asyncio.Future[Any]]


def _each(waiters: Waiters | None) -> list[asyncio.Future[Any]]:
    """The futures of one key (a copy: resolving one may change the set)."""
    if waiters is None:
        return []
    if isinstance(waiters, set):
        return list(waiters)
    return [waiters]


def agent_key(agent_id: str) -> str:
    """The waiter key that fires when an agent's status changes."""
    return f"agent:{agent_id}"


class EventBus:
    def __init__(self) -> None:
        # key -> its one waiter, or a set of them: most keys (an intent id) have one, and a
        # set per held request would cost ~200 bytes each (docs/benchmarks.md: holds).
        self._waiters: dict[str, Waiters] = {}
        self._listeners: list[Subscription] = []
        self._background: set[asyncio.Task[Any]] = set()
        # Other processes on the same store (usecases/feed.py): listeners told of their
        # changes too, while ``active()`` says someone is watching (dashboard streams).
        self._remote: list[tuple[Listener, Callable[[], bool]]] = []
        self.interest = asyncio.Event()  # set whenever a waiter is added

    # -- waiters (held requests) ------------------------------------------------------------

    def wait(self, key: str) -> asyncio.Future[Any]:
        """A future resolved by the next ``notify(key, ...)``."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.wait_on(future, key)
        return future

    def wait_on(self, future: asyncio.Future[Any], *keys: str) -> None:
        """Resolve ``future`` (if not done yet) on the next ``notify`` of any of ``keys``;
        it is forgotten under every key once done. One future for several keys: a held
        request waits for its intent and its agent at the cost of one."""
        waiters = self._waiters
        for key in keys:
            current = waiters.get(key)
            if current is None:
                waiters[key] = future
            elif isinstance(current, set):
                current.add(future)
            elif current is not future:
                waiters[key] = {current, future}
        self.interest.set()
        future.add_done_callback(_Forget(self._waiters, keys))

    def notify(self, key: str, status: str, intent: Intent | None = None) -> None:
        """Wake the waiters of ``key`` with ``intent`` (the change as committed, when the
        caller has it) or else ``status``."""
        for future in _each(self._waiters.get(key)):
            if not future.done():
                future.set_result(intent if intent is not None else status)

    def waiting(self) -> int:
        return len({future for waiters in self._waiters.values() for future in _each(waiters)})

    # -- listeners (dashboard, webhooks, Slack) ----------------------------------------------

    def subscribe(
        self,
        listener: Listener,
        *,
        events: Collection[str] | None = None,
        active: Callable[[], bool] | None = None,
        concerns: Concerns | None = None,
    ) -> None:
        """Be told of new intents ("proposed") and later transitions: only ``events`` (all
        by default), while ``active()`` (always by default), for the intents it
        ``concerns`` (all by default; checked only by callers that ask ``audience``)."""
        wanted = frozenset(events) if events is not None else None
        self._listeners.append(Subscription(listener, wanted, active, concerns))

    @property
    def has_listeners(self) -> bool:
        return bool(self._listeners)

    def listening(self, event: str) -> bool:
        """Someone would be told of ``event`` now (cheap: no I/O)."""
        return any(subscription.wants(event) for subscription in self._listeners)

    async def audience(self, event: str, intent_id: str) -> tuple[Subscription, ...]:
        """Who is to be told of ``event`` on this (committed) intent; empty when nobody, so
        the caller can skip reading the intent at all. A ``concerns`` check that fails
        counts as concerned: when unsure, tell (the listener looks it up itself)."""
        wanted = [s for s in self._listeners if s.wants(event)]
        if not wanted:
            return ()
        told = []
        for subscription in wanted:
            if subscription.concerns is None:
                told.append(subscription)
                continue
            try:
                concerned = await subscription.concerns(intent_id)
            except Exception:
                concerned = True
            if concerned:
                told.append(subscription)
        return tuple(told)

    def subscribe_remote(self, listener: Listener, active: Callable[[], bool]) -> None:
        """Also be told of changes made by other processes on this store (the dashboard's
        live queue). Webhooks and Slack are not: the process that made a change tells them,
        so nothing fires twice."""
        self._remote.append((listener, active))

    @property
    def remote_listening(self) -> bool:
        return any(active() for _, active in self._remote)

    @property
    def watching_remote(self) -> bool:
        """Someone here cares what other processes change: a held request or a stream."""
        return bool(self._waiters) or self.remote_listening

    def publish_remote(self, event: str, intent: Intent, actor: str) -> None:
        for listener, active in self._remote:
            if active():
                self._spawn(listener(event, intent, actor))

    def publish(
        self,
        event: str,
        intent: Intent,
        actor: str,
        audience: tuple[Subscription, ...] | None = None,
    ) -> None:
        """Tell ``audience`` (from ``audience()``), or everyone who wants ``event`` now and
        whom the intent concerns (asked in the background, like the telling itself)."""
        if audience is not None:
            for subscription in audience:
                self._spawn(subscription.listener(event, intent, actor))
            return
        for subscription in self._listeners:
            if not subscription.wants(event):
                continue
            if subscription.concerns is None:
                self._spawn(subscription.listener(event, intent, actor))
            else:
                self._spawn(_tell_if_concerned(subscription, event, intent, actor))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def transitioned(self, intent: Intent, event: str, actor: str) -> None:
        """An intent changed status: wake its waiters (with the intent as committed), tell
        the listeners."""
        self.notify(intent.id, intent.status, intent)
        self.publish(event, intent, actor)

    async def drain(self, timeout_s: float) -> None:
        """Wait for the listeners already told (a short-lived process, e.g. the CLI)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout_s)

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()


async def _tell_if_concerned(
    subscription: Subscription, event: str, intent: Intent, actor: str
) -> None:
    assert subscription.concerns is not None
    try:
        concerned = await subscription.concerns(intent.id)
    except Exception:
        concerned = True  # when unsure, tell
    if concerned:
        await subscription.listener(event, intent, actor)


class _Forget:
    """Done-callback: drop a finished waiter from every key it waited on."""

    __slots__ = ("_keys", "_waiters")

    def __init__(self, waiters: dict[str, Waiters], keys: tuple[str, ...]):
        self._waiters = waiters
        self._keys = keys

    def __call__(self, future: asyncio.Future[Any]) -> None:
        for key in self._keys:
            waiters = self._waiters.get(key)
            if waiters is future:
                del self._waiters[key]
            elif isinstance(waiters, set):
                waiters.discard(future)
                if not waiters:
                    del self._waiters[key]


class SharedReads[K, V]:
    """A read of the store (``read(key)``: is any webhook registered? is this agent still
    active?) asked by many callers, made once per key per loop tick.

    Every caller waits for a read that *starts after it asked* (on the next loop
    iteration), and everyone who asked for the same key in the same tick shares it. So
    each caller gets exactly what a read of its own would have told it — a read that
    starts after the caller asked sees everything committed before, whichever process
    committed it — at the cost of one read per tick instead of one per caller (ten
    thousand held requests released at once ask about one agent). A read that fails fails
    every caller that shares it.
    """

    def __init__(self, read: Callable[[K], Awaitable[V]]) -> None:
        self._read = read
        self._next: dict[K, asyncio.Future[V]] = {}
        self._reads: set[asyncio.Task[None]] = set()

    async def __call__(self, key: K) -> V:
        answer = self._next.get(key)
        if answer is None:
            loop = asyncio.get_running_loop()
            answer = self._next[key] = loop.create_future()
            loop.call_soon(self._start, key, answer)
        return await asyncio.shield(answer)

    def _start(self, key: K, answer: asyncio.Future[V]) -> None:
        if self._next.get(key) is answer:
            del self._next[key]  # who asks from now on waits for a read that starts later
        task = asyncio.ensure_future(self._answer(key, answer))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def _answer(self, key: K, answer: asyncio.Future[V]) -> None:
        try:
            result = await self._read(key)
        except asyncio.CancelledError:
            answer.cancel()  # (shutdown) its callers end too, instead of waiting forever
            raise
        except Exception as exc:
            if not answer.done():
                answer.set_exception(exc)
                answer.exception()  # retrieved: no warning when every caller went away
            return
        if not answer.done():
            answer.set_result(result)
