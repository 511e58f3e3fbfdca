"""The use case: a person's message in a thread becomes one each::sense turn.

Decisions made here and nowhere else:
- thread → session: a new thread gets a new `session_id`; a known thread continues its own;
- mode: the thread's override (Discord's `mode:` option) or else the channel's eco setting,
  read at every turn so `/sense-eco on` applies to the very next message;
- one turn at a time per thread (each::sense answers `SESSION_BUSY` otherwise): a second
  message waits and the person is told it is queued;
- a global cap and a per-person cap on turns in flight;
- dedupe of platform redeliveries before anything is generated;
- a running turn can be stopped; a turn cut by a crash is found at start-up.

Adapters call `run()` with a `Turn` and a `Surface`; nothing here raises a `BotError` at
them: every failure becomes a sentence in the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from bot.config import Settings
from bot.controls import AgentOptions, agent_options, footer_notes
from bot.creative import new_generation_id, offer_controls
from bot.delivery import deliver, may_act, say
from bot.eachsense import EachSenseClient
from bot.errors import BotError, BusyError, InputError, TurnTooLong
from bot.i18n import N_, _, ngettext
from bot.media import MediaFetcher
from bot.metrics import Metrics
from bot.models import (
    ChannelKey,
    GenerationRecord,
    GenerationResponse,
    Mode,
    ThreadKey,
    ThreadRecord,
    Turn,
    TurnRecord,
    TurnStatus,
    View,
)
from bot.pacing import EditBudget
from bot.ports import Store, Surface
from bot.render import ReplyRenderer
from bot.replicas import Coordinator
from bot.status import keep_status, release
from bot.usage import UsageLog

log = logging.getLogger(__name__)

QUEUED = N_("⏳ Queued: I'll answer this as soon as the reply above is finished.")
WAITING = N_("⏳ Many requests are running right now: yours starts as soon as one finishes.")
INTERRUPTED = N_(
    "⚠️ The bot restarted while answering here, so that answer was lost. "
    "Please send your message again."
)
RESTARTING = N_("The bot is restarting right now. Please send your message again in a moment.")
DRAIN_EDIT_TIMEOUT = 10.0  # for the interrupted turns' final edits during a drain
ALREADY_FINISHED = N_("That answer has already finished.")
STOP_REFUSED = N_("Only the person who asked can stop this answer.")
STOPPING = N_("Stopping…")
ECO_USAGE = N_("Use `/sense-eco on`, `/sense-eco off` or `/sense-eco status`.")


def new_session_id() -> str:
    """Client-chosen session ids (the server creates the session on first use)."""
    return f"esb-{uuid.uuid4().hex}"


@dataclass
class _ThreadSlot:
    """A per-thread lock that disappears when nobody holds or waits for it, so thousands
    of idle threads cost no memory here (they live in storage)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass
class _Running:
    task: asyncio.Task[None]
    user_id: str
    key: ThreadKey


class Conversations:
    def __init__(
        self,
        *,
        store: Store,
        agent: EachSenseClient,
        media: MediaFetcher,
        settings: Settings,
        metrics: Metrics | None = None,
        coordinator: Coordinator | None = None,
        clock: Callable[[], float] = time.time,
        usage: UsageLog | None = None,
    ) -> None:
        self.store = store
        self.usage = usage  # records every ended turn and delivered file (`bot.usage`)
        self.coordinator = coordinator or Coordinator(store, settings, enabled=False)
        self.metrics = metrics or Metrics()
        self.agent = agent
        self.media = media
        self.settings = settings
        self._clock = clock
        self._slots: dict[ThreadKey, _ThreadSlot] = {}
        self._global = asyncio.Semaphore(settings.max_concurrent_turns)
        self._per_user: dict[str, int] = {}
        self._running: dict[str, _Running] = {}
        self._turn_tasks: set[asyncio.Task[object]] = set()  # tasks inside `_run_turn`
        self._draining = False
        self._interrupting = False
        rate = settings.live_edits_per_second
        self._edit_budget = EditBudget(rate) if rate > 0 else None

    # --- questions adapters ask ---------------------------------------------------------

    def check_prompt(self, text: str) -> str:
        """The prompt to send, or an `InputError` saying what is wrong with it."""
        prompt = (text or "").strip()
        if not prompt:
            raise InputError(_("Please write a prompt, for example `/sense a cyberpunk city`."))
        limit = self.settings.max_prompt_chars
        if len(prompt) > limit:
            raise InputError(
                _(
                    "That prompt is {length} characters; the limit is {limit}. Please shorten it."
                ).format(length=f"{len(prompt):,}", limit=f"{limit:,}")
            )
        return prompt

    async def mode_for(self, channel: ChannelKey, override: Mode | None = None) -> Mode:
        if override is not None:
            return override
        settings = await self.store.get_channel(channel)
        return "eco" if settings.eco else "max"

    async def is_bot_thread(self, key: ThreadKey) -> bool:
        return await self.store.get_thread(key) is not None

    async def claim_event(self, platform: str, event_id: str) -> bool:
        return await self.store.claim_event(
            platform, event_id, now=self._clock(), ttl=self.settings.event_dedupe_ttl
        )

    def now(self) -> float:
        """The clock every stored time comes from (tests pass their own)."""
        return self._clock()

    @property
    def running_turns(self) -> int:
        return len(self._running)

    # --- running a turn -----------------------------------------------------------------

    async def run(self, turn: Turn, surface: Surface) -> None:
        """Answer one message in its thread. Never raises `BotError`."""
        if turn.event_id and not await self.claim_event(turn.key.platform, turn.event_id):
            log.info("ignoring redelivered event %r", turn.event_id[:80])
            return
        try:
            if self._draining:
                raise BusyError(_(RESTARTING))
            prompt = self.check_prompt(turn.text)
            async with self.user_slot(turn.user_id):
                record = await self._thread_for(turn)
                await self._run_in_order(turn, prompt, record, surface)
        except BotError as err:
            await say(surface, "⚠️ " + err.user_message)
        except Exception:
            # a store failure (for example `database is locked`) before the answer started:
            # the person still hears that something went wrong, not silence
            log.exception("turn in %s failed before it started", turn.key)
            await say(surface, "⚠️ " + BotError().user_message)

    @contextlib.asynccontextmanager
    async def user_slot(self, user_id: str) -> AsyncIterator[None]:
        """One of the person's `MAX_TURNS_PER_USER` slots for the block (turns and direct
        runs alike, on every replica), or `BusyError` when all are taken."""
        self._take_user_slot(user_id)
        try:
            limit = self.settings.max_turns_per_user
            async with self.coordinator.person_slot(user_id, limit=limit):
                yield
        finally:
            self._release_user_slot(user_id)

    async def say(self, surface: Surface, what: str | View) -> None:
        await say(surface, what)

    def _take_user_slot(self, user_id: str) -> None:
        count = self._per_user.get(user_id, 0)
        if count >= self.settings.max_turns_per_user:
            raise BusyError(
                ngettext(
                    "You already have {count} request running. "
                    "Please wait for it to finish before sending another.",
                    "You already have {count} requests running. "
                    "Please wait for one to finish before sending another.",
                    count,
                ).format(count=count)
            )
        self._per_user[user_id] = count + 1

    def _release_user_slot(self, user_id: str) -> None:
        count = self._per_user.get(user_id, 1) - 1
        if count <= 0:
            self._per_user.pop(user_id, None)
        else:
            self._per_user[user_id] = count

    async def _thread_for(self, turn: Turn) -> ThreadRecord:
        """The thread's session, created for a new thread (or an unknown one)."""
        now = self._clock()
        record = None if turn.new_thread else await self.store.get_thread(turn.key)
        if record is None:
            record = ThreadRecord(
                key=turn.key,
                session_id=new_session_id(),
                owner_id=turn.user_id,
                created_at=now,
                last_used_at=now,
                mode=turn.mode,
            )
            await self.store.save_thread(record)
        return record

    async def _run_in_order(
        self, turn: Turn, prompt: str, record: ThreadRecord, surface: Surface
    ) -> None:
        slot = self._slots.setdefault(turn.key, _ThreadSlot())
        slot.users += 1
        arrived = time.monotonic()
        try:
            if slot.lock.locked():
                await say(surface, _(QUEUED))
            async with (
                slot.lock,
                self.coordinator.thread_turn(
                    str(turn.key), on_wait=lambda: say(surface, _(QUEUED))
                ),
            ):
                if self._global.locked():
                    await say(surface, _(WAITING))
                async with self._global:
                    self.metrics.queue_wait.observe(time.monotonic() - arrived)
                    await self._run_turn(turn, prompt, record, surface, arrived=arrived)
        finally:
            slot.users -= 1
            if slot.users == 0:
                self._slots.pop(turn.key, None)

    async def _run_turn(
        self, turn: Turn, prompt: str, record: ThreadRecord, surface: Surface, *, arrived: float
    ) -> None:
        channel = await self.store.get_channel(turn.key.channel_key)
        mode: Mode = record.mode or ("eco" if channel.eco else "max")
        options = agent_options(channel, behavior=turn.behavior, adult=turn.adult)
        surface = keep_status(surface)  # where the thread has a status place, keep it current
        turn_id = uuid.uuid4().hex[:20]
        await self.store.begin_turn(
            TurnRecord(
                id=turn_id,
                key=turn.key,
                user_id=turn.user_id,
                prompt=prompt,
                status=TurnStatus.RUNNING,
                started_at=self._clock(),
                mode=mode,
                owner=self.coordinator.replica_id,
                behavior=turn.behavior,
                image_urls=turn.image_urls,
            )
        )
        renderer = ReplyRenderer(
            surface,
            turn_id=turn_id,
            mode=mode,
            budget=self._edit_budget,
            notes=footer_notes(options),
            plan=options.behavior == "plan",
        )
        await renderer.start()
        self.metrics.first_update.observe(time.monotonic() - arrived)
        task = asyncio.create_task(
            self._finish_turn(turn_id, turn, prompt, record, mode, renderer, surface, options),
            name=f"turn-{turn_id}",
        )
        self._running[turn_id] = _Running(task, turn.user_id, turn.key)
        me = asyncio.current_task()
        if me is not None:
            self._turn_tasks.add(me)
        self.metrics.running.inc()
        status = TurnStatus.FAILED
        try:
            status = await self._outcome(turn_id, task, renderer)
        finally:
            self.metrics.running.dec()
            self.metrics.turns.labels(status.value).inc()
            self._running.pop(turn_id, None)
            if me is not None:
                self._turn_tasks.discard(me)
            await release(surface)
            with contextlib.suppress(Exception):
                now = self._clock()
                await self.store.finish_turn(turn_id, status=status, at=now)
                await self.store.touch_thread(turn.key, at=now)
            if self.usage is not None:
                await self.usage.turn_ended(
                    turn_id=turn_id, key=turn.key, user_id=turn.user_id, status=status
                )

    async def _outcome(
        self, turn_id: str, task: asyncio.Task[None], renderer: ReplyRenderer
    ) -> TurnStatus:
        """Wait for the turn's task; whatever happened, the message shows how it ended."""
        try:
            await asyncio.shield(task)
            return TurnStatus.DONE
        except asyncio.CancelledError:
            if not task.cancelled():  # we were cancelled (shutdown): stop the stream too
                task.cancel()
                raise
            if self._interrupting:  # a drain ran out of grace: hand the turn back
                await renderer.interrupted()
                return TurnStatus.INTERRUPTED
            await renderer.cancelled()
            return TurnStatus.CANCELLED
        except BotError as err:
            log.info("turn %s failed: %s", turn_id, err.detail)
            self.metrics.agent_errors.labels(getattr(err, "code", None) or type(err).__name__).inc()
            await renderer.fail(err)
        except Exception:
            log.exception("turn %s crashed", turn_id)
            self.metrics.agent_errors.labels("crash").inc()
            await renderer.fail(BotError())
        return TurnStatus.FAILED

    async def _finish_turn(
        self,
        turn_id: str,
        turn: Turn,
        prompt: str,
        record: ThreadRecord,
        mode: Mode,
        renderer: ReplyRenderer,
        surface: Surface,
        options: AgentOptions,
    ) -> None:
        """Stream the turn, then send its final edit from this same task.

        The final edit is what the person waits for: sending it here, as soon as the stream
        ends, saves the hand-offs back to `_run_turn` (task done, shield, wake-up), each a
        full event-loop iteration, which are long when many turns are streaming. Once the
        stream is over the turn leaves `_running`, so Stop can no longer cut that edit."""
        await self._stream(
            turn, prompt, record, mode, renderer, surface, turn_id=turn_id, options=options
        )
        self._running.pop(turn_id, None)
        ended = time.monotonic()
        await renderer.finish()
        self.metrics.final_edit.observe(time.monotonic() - ended)

    async def _stream(
        self,
        turn: Turn,
        prompt: str,
        record: ThreadRecord,
        mode: Mode,
        renderer: ReplyRenderer,
        surface: Surface,
        *,
        turn_id: str,
        options: AgentOptions,
    ) -> None:
        """Relay the stream into the renderer within `MAX_TURN_SECONDS`; media go out in
        order on a side task so a slow upload never holds up the live text."""
        uploads = _Uploads(lambda url: self._upload(url, turn, record, renderer, surface, turn_id))
        try:
            async with self._deadline():
                async for event in self.agent.stream(
                    prompt,
                    session_id=record.session_id,
                    mode=mode,
                    image_urls=turn.image_urls,
                    behavior=options.behavior,
                    web_search=options.web_search,
                    enable_safety_checker=options.safety_checker,
                ):
                    renderer.feed(event)
                    if isinstance(event, GenerationResponse):
                        uploads.add(event.url)
        except asyncio.CancelledError:  # Stop: pending uploads go too
            await uploads.cancel()
            raise
        except BaseException:  # a failed stream still delivers what was generated
            await uploads.drain()
            raise
        await uploads.drain()

    @contextlib.asynccontextmanager
    async def _deadline(self) -> AsyncIterator[None]:
        """A turn that streams keep-alives (or trickles) forever still ends: it would hold
        the thread, a global slot and one of the person's slots."""
        limit = self.settings.max_turn_seconds
        try:
            async with asyncio.timeout(limit):
                yield
        except TimeoutError as exc:
            raise TurnTooLong(limit) from exc

    async def _upload(
        self,
        url: str,
        turn: Turn,
        record: ThreadRecord,
        renderer: ReplyRenderer,
        surface: Surface,
        turn_id: str,
    ) -> None:
        """Post the file, remember it, and offer the creative controls under it (only once
        it is stored: a button must name a generation that can be found again)."""
        kind = await deliver(self.media, url, surface)
        renderer.media_done(url, kind)
        if self.usage is not None:
            await self.usage.generation_delivered(
                session_id=record.session_id, key=turn.key, user_id=turn.user_id, url=url, kind=kind
            )
        generation = GenerationRecord(
            url=url,
            media_type=kind,
            session_id=record.session_id,
            key=record.key,
            message_id=None,
            created_at=self._clock(),
            id=new_generation_id(),
            turn_id=turn_id,
        )
        try:
            await self.store.add_generation(generation)
        except Exception as exc:
            log.warning("turn %s: generation not recorded (%s): no controls", turn_id, exc)
            return
        await offer_controls(surface, generation)

    # --- buttons and commands -----------------------------------------------------------

    async def stop(self, turn_id: str, *, user_id: str, admin: bool = False) -> str:
        """The Stop button, on whichever replica it was pressed: the same sentences."""
        running = self._running.get(turn_id)
        if running is None:
            return await self._stop_elsewhere(turn_id, user_id=user_id, admin=admin)
        if not may_act(user_id, running.user_id, admin=admin, settings=self.settings):
            return _(STOP_REFUSED)
        running.task.cancel()
        return _(STOPPING)

    async def _stop_elsewhere(self, turn_id: str, *, user_id: str, admin: bool) -> str:
        """A turn running on another replica: ask its owner through the store."""
        if not self.coordinator.enabled:
            return _(ALREADY_FINISHED)
        record = await self.store.get_turn(turn_id)
        if record is None or record.status is not TurnStatus.RUNNING:
            return _(ALREADY_FINISHED)
        if not may_act(user_id, record.user_id, admin=admin, settings=self.settings):
            return _(STOP_REFUSED)
        if not await self.store.request_stop(turn_id, at=self._clock()):
            return _(ALREADY_FINISHED)
        return _(STOPPING)

    async def watch_stops(self) -> None:
        """One look at the stop requests for this replica's running turns (the owner's side
        of a Stop pressed elsewhere); leases of running work are renewed on the way."""
        if not self._running:
            return
        for turn_id in await self.store.stop_requested(list(self._running)):
            running = self._running.get(turn_id)
            if running is not None:
                log.info("turn %s: stop requested on another replica", turn_id)
                running.task.cancel()
        await self.coordinator.renew()

    async def regenerate(self, turn_id: str, *, user_id: str, surface: Surface) -> None:
        record = await self.store.get_turn(turn_id)
        if record is None:
            await say(surface, _("⚠️ I can't find that request any more. Please ask again."))
            return
        again = Turn(
            key=record.key,
            user_id=user_id,
            text=record.prompt,
            image_urls=record.image_urls,  # a control's reference, an attachment's copy
            behavior=record.behavior,  # a plan is planned again, never run unapproved
        )
        await self.run(again, surface)

    async def eco(
        self,
        channel: ChannelKey,
        action: str,
        *,
        user_id: str,
        is_admin: bool,
        admins: str = N_("channel admins"),
    ) -> str:
        """`/sense-eco`: the sentence to answer with; `admins` says who counts as an admin
        on this platform (for the refusal; a marked sentence, translated here)."""
        action = (action or "status").strip().lower()
        if action == "status":
            current = await self.store.get_channel(channel)
            return self._eco_sentence(current.eco)
        if action not in ("on", "off"):
            return _("Unknown option `{option}`. {usage}").format(
                option=action[:40], usage=_(ECO_USAGE)
            )
        if not (is_admin or user_id in self.settings.bot_admins):
            return _(
                "Only admins can change eco mode here ({admins}, or ids in BOT_ADMINS). "
                "`/sense-eco status` works for everyone."
            ).format(admins=_(admins))
        await self.store.set_channel_eco(channel, eco=action == "on", by=user_id, at=self._clock())
        return _("Done. {status}").format(status=self._eco_sentence(action == "on"))

    @staticmethod
    def _eco_sentence(eco: bool) -> str:
        if eco:
            return _("Eco mode is **on** in this channel: faster, cheaper generations.")
        return _("Eco mode is **off** in this channel: answers use max mode (best quality).")

    async def recover(self) -> list[TurnRecord]:
        """At start-up: turns a dead process left running, now marked interrupted. With
        several replicas only those whose owner's heartbeat is stale (or this replica's own
        previous life's): a live replica's turns are never touched."""
        coordinator = self.coordinator
        await coordinator.heartbeat()
        if coordinator.enabled:
            turns = await self.store.interrupt_running_turns(
                at=self._clock(),
                stale_before=coordinator.stale_before(),
                replica_id=coordinator.replica_id,
            )
        else:
            turns = await self.store.interrupt_running_turns(at=self._clock())
        if turns:
            log.warning("%d turns were interrupted by a restart", len(turns))
        return turns

    async def sweep(self) -> list[TurnRecord]:
        """Now and then on every replica: turns whose owner died since (stale heartbeat),
        now marked interrupted, for their threads to be told. Each goes to one sweeper."""
        turns = await self.store.interrupt_running_turns(
            at=self._clock(), stale_before=self.coordinator.stale_before()
        )
        if turns:
            log.warning("%d turns of a dead replica were interrupted", len(turns))
        return turns

    async def drain(self, grace: float) -> None:
        """Graceful stop (SIGTERM): take no new turns, give the running ones `grace`
        seconds, then cut the rest off with a final edit that says so (Regenerate retries)
        and mark them interrupted. No live answer is left with a Stop button."""
        self._draining = True
        running = [r.task for r in self._running.values()]
        if running:
            await asyncio.wait(running, timeout=grace)
        self._interrupting = True
        for left in list(self._running.values()):
            left.task.cancel()
        if self._turn_tasks:
            await asyncio.wait(list(self._turn_tasks), timeout=DRAIN_EDIT_TIMEOUT)

    @property
    def draining(self) -> bool:
        return self._draining

    async def aclose(self) -> None:
        tasks = [running.task for running in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Uploads:
    """Generated files, delivered one after another on one side task.

    The task starts with the first file: most turns have none, and waiting for an idle
    uploader to see the end of its queue costs two event-loop iterations per turn."""

    def __init__(self, upload: Callable[[str], Awaitable[None]]) -> None:
        self._upload = upload
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._seen: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def add(self, url: str) -> None:
        if url in self._seen:
            return
        self._seen.add(url)
        self._queue.put_nowait(url)
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while (url := await self._queue.get()) is not None:
            await self._upload(url)

    async def drain(self) -> None:
        """Deliver what is queued, then stop."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task

    async def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
