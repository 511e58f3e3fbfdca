"""Answers under the platforms' limits: scenarios A and B on Slack and Discord, ours against
the baseline in the same run.

The scenarios (the ones the best open-source bots publish for themselves):
- A: one conversation; 2,000 text deltas evenly over 10 s (±0.5 s); an 11,223-character answer.
- B: 20 conversations at once, each in its own channel of one Slack workspace / one Discord
  guild; 500 deltas over 10 s (±0.5 s, seeded) each; a 2,804-character answer each. Discord
  also runs B with 200 conversations.

Limits, enforced by the fakes: Slack `chat.update` 50 a minute per workspace with bursts of 10
and `chat.postMessage` one a second per channel with bursts of 3, both token buckets answered
429 with `Retry-After` (`tests.limited_slack`); Discord 5 edits per 5 s per channel and 50
requests a second per bot, answered 429 with `retry_after` (`tests.fakes.discord`). Slack B
also runs with the fake's limits off: then any wait is one the bot imposed on itself.

Figures, per conversation, read from the fake's record of every call (what a person would
have seen, in order):
- `done`: from the simulator writing the last delta to the write after which the thread shows
  exactly the whole answer, all its messages joined, and keeps showing it. A conversation that
  never does counts its last write instead (and is not `exact`).
- `blind`: the longest stretch from the first delta to `done` in which the conversation's
  messages got no write at all (no post, edit or stream call).
- `exact`: the conversation ends showing exactly the answer.
- `429`: how many calls the platform answered 429 during the runs; `429_last_run`: how many
  of them in a scenario's last run. Slack's adaptive budgets start from the documented tier
  and grow until the workspace says no: a few 429s while they learn, none once they have.
- `start`: from the command to the first delta (the time a conversation waited to begin: on
  Discord, answers start only while the bot's global budget can keep every live one fresh).
Medians and p99s are over every conversation of every run of a scenario (3 runs each);
`*_ratio` is ours over the baseline's.

Setup. The bot runs as in production, in its own process (`python -m bot run --platform
...`, settings in env vars: the production limiters, the production Discord client options);
the fakes, the scripted each::sense and the clients playing Slack's or Discord's part run in
this process. The baseline is the very same command run from a copy of the tree at `BASELINE`
(the commit before the budgets work; `BENCH_BASELINE` overrides it), in the same run, against
the same fakes. Answers are plain sentences (no Markdown, no newlines), so what a message
shows can be compared with the answer character for character: Slack's section blocks are
joined and un-escaped, Discord's status line (after the blank line) is left out.

Run: `python -m bench.bench_answers [--quick] [--only slack|discord]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.common import (
    ROOT_DIR,
    SIGNING_SECRET,
    Result,
    child_env,
    free_port,
    median,
    percentile,
    result,
    signed_command,
)
from simulator import Simulator, _complete_event, _Encoder, _Turn
from tests.fakes.discord import FakeDiscord
from tests.fakes.slack import FakeSlack
from tests.limited_slack import LimitedSlack

BASELINE = os.environ.get("BENCH_BASELINE", "d66f0ac")
RUNS = 3
SEED = 20260101
DONE_SLACK = "Done"  # the footer's word on both platforms ("✅ Done · max mode · 10.2 s")
RUN_DEADLINE = 150.0  # a run's conversations must all have ended by then
SETTLE = 1.0  # quiet time after a run, so the next run starts from an idle bot
WORDS = (
    "the a of and to in is it that for on with as was by this be are from at or an which one "
    "all their there been has more if will about would up out so what when can into some time "
    "than them could these two may then do first any like now my such make over our even most "
    "image light colour scene frame render model prompt style detail shadow texture city river "
    "forest mountain ocean night morning studio portrait camera lens focus motion video sound "
    "music voice story character paint brush canvas sketch pixel vector layer mask depth field "
    "warm cold soft sharp bright dark quiet busy simple rich gentle bold careful quick slow"
).split()


@dataclass(frozen=True)
class Scenario:
    name: str
    conversations: int
    deltas: int
    chars: int
    seconds: float = 10.0
    jitter: float = 0.5


A = Scenario("A", 1, 2000, 11_223)
B = Scenario("B", 20, 500, 2_804)


# --- the answers -----------------------------------------------------------------------------


def answer_text(chars: int, rng: random.Random) -> str:
    """Plain sentences of exactly `chars` characters, ending with a full stop."""
    pieces: list[str] = []
    size = 0
    while size < chars + 16:
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 16))]
        sentence = " ".join(words).capitalize()
        if len(words) > 9 and rng.random() < 0.5:
            cut = rng.randint(3, len(words) - 3)
            sentence = " ".join(words[:cut]).capitalize() + ", " + " ".join(words[cut:])
        pieces.append(sentence + ". ")
        size += len(pieces[-1])
    text = "".join(pieces)[: chars - 1].rstrip(" ,.")
    while len(text) < chars - 1:  # the trim took trailing spaces or punctuation: pad a word
        text += rng.choice("abcdefghij")
    return text + "."


def split_deltas(text: str, count: int) -> list[str]:
    """`text` in `count` consecutive pieces of (nearly) equal size."""
    bounds = [round(i * len(text) / count) for i in range(count + 1)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@dataclass
class Script:
    """One conversation's stream: its deltas, over how long, and when they were written."""

    text: str
    deltas: list[str]
    seconds: float
    first: float | None = None  # time.monotonic() of the first delta written
    last: float | None = None
    sent: float | None = None  # when the conversation's command was sent


def make_script(scenario: Scenario, run: int, index: int) -> Script:
    rng = random.Random(f"{SEED}:{scenario.name}:{run}:{index}")
    text = answer_text(scenario.chars, rng)
    seconds = scenario.seconds + rng.uniform(-scenario.jitter, scenario.jitter)
    return Script(text, split_deltas(text, scenario.deltas), seconds)


class ScriptedSimulator(Simulator):
    """The simulator, plus scripted turns: a prompt containing `answer:<key>` streams that
    script's deltas evenly over its duration (on absolute deadlines, so the pace does not
    drift), then `complete`. Everything else is the ordinary simulator."""

    def __init__(self) -> None:
        super().__init__(speed=1000.0)
        self.scripts: dict[str, Script] = {}

    def _script_for(self, prompt: str) -> Script | None:
        if "answer:" not in prompt:
            return None
        key = prompt.split("answer:", 1)[1].split()[0]
        return self.scripts.get(key)

    async def _stream(self, request: web.Request, turn: _Turn) -> web.StreamResponse:
        script = self._script_for(turn.prompt)
        if script is None:
            return await super()._stream(request, turn)
        resp = await self._open_stream(request, turn.session_id)
        encode = _Encoder(self.shape, turn)
        step = script.seconds / max(1, len(script.deltas) - 1)
        try:
            await resp.write(b": ping\n\n")
            start = time.monotonic()
            for i, delta in enumerate(script.deltas):
                delay = start + i * step - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await resp.write(encode({"type": "text_response", "content": delta}))
                script.last = time.monotonic()
                if script.first is None:
                    script.first = script.last
            await resp.write(encode(_complete_event(turn, [])))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionError:
            pass
        return resp


# --- judging what a thread showed ------------------------------------------------------------


@dataclass
class Write:
    """One successful write to a message of a conversation, as the fake received it."""

    at: float
    message: str
    text: str  # the answer text the message shows after this write (or appended, `append`)
    append: bool = False


@dataclass
class Verdict:
    exact: bool
    done: float | None  # seconds from the last delta (see the module docstring); None: never
    blind: float
    writes: int
    messages: int
    start: float | None = None  # seconds from the command to the first delta


def judge(writes: Sequence[Write], script: Script) -> Verdict:
    """Replay the writes in order and find when the thread showed exactly the answer."""
    assert script.first is not None and script.last is not None
    if not writes:
        return Verdict(False, None, RUN_DEADLINE, 0, 0)
    state: dict[str, str] = {}
    order: list[str] = []
    done_at: float | None = None
    for write in writes:
        if write.message not in state:
            order.append(write.message)
            state[write.message] = ""
        state[write.message] = (state[write.message] + write.text) if write.append else write.text
        full = "".join(state[m] for m in order) == script.text
        if not full:
            done_at = None
        elif done_at is None:
            done_at = write.at
    exact = done_at is not None
    end = done_at if done_at is not None else max(w.at for w in writes)
    times = [w.at for w in writes if script.first < w.at <= end]
    edges = [script.first, *times, end]
    blind = max((b - a for a, b in itertools.pairwise(edges)), default=0.0)
    done = end - script.last if exact else None
    start = script.first - script.sent if script.sent is not None else None
    return Verdict(exact, done, blind, len(writes), len(order), start)


def slack_answer_text(blocks: Any, text: str) -> str:
    """What a Slack message shows of the answer: its sections joined, un-escaped (the
    status line is a context block, the buttons an actions block)."""
    if isinstance(blocks, str):
        blocks = json.loads(blocks) if blocks else []
    if not blocks:
        shown = text
    else:
        shown = "".join(
            str(b["text"]["text"])
            for b in blocks
            if b.get("type") == "section" and isinstance(b.get("text"), dict)
        )
    return shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def slack_writes(slack: FakeSlack, channel: str, root: str) -> list[Write]:
    """Every successful write to the replies of thread (`channel`, `root`), in order. A post
    (or a started stream) creates the thread's next message, in the order the fake kept."""
    replies = [m.ts for m in slack.thread(channel, root)]
    created = iter(replies)
    known = set(replies)
    out: list[Write] = []
    for call in slack.calls:
        p = call.params
        if call.status != 200 or call.error is not None or p.get("channel") != channel:
            continue
        if call.method in ("chat.postMessage", "chat.startStream"):
            if p.get("thread_ts") != root:
                continue
            ts = next(created)
            if call.method == "chat.postMessage":
                out.append(
                    Write(call.at, ts, slack_answer_text(p.get("blocks"), p.get("text", "")))
                )
            else:
                out.append(Write(call.at, ts, str(p.get("markdown_text") or ""), append=True))
        elif call.method == "chat.update" and p.get("ts") in known:
            out.append(Write(call.at, str(p["ts"]), slack_answer_text(p.get("blocks"), "")))
        elif call.method in ("chat.appendStream", "chat.stopStream") and p.get("ts") in known:
            out.append(Write(call.at, str(p["ts"]), str(p.get("markdown_text") or ""), True))
    return out


STATUS_MARKS = ("💭", "✍️", "✅", "⚠️", "⏹️", "🔧", "⏳", "💬", "🔎", "🎨", "⚙️")


def discord_answer_text(content: str) -> str:
    """What a Discord message shows of the answer: its content without the status line."""
    if content == "\u200b":
        return ""
    parts = content.split("\n\n")
    if parts and parts[-1].startswith(STATUS_MARKS):
        parts = parts[:-1]
    return "\n\n".join(parts)


def discord_writes(fake: FakeDiscord, thread: str) -> list[Write]:
    """Every successful post and edit in a thread, in order; the k-th post created the k-th
    message the fake kept for that channel."""
    created = iter([m["id"] for m in fake.messages.values() if m["channel_id"] == thread])
    post_path = f"/channels/{thread}/messages"
    out: list[Write] = []
    for call in fake.calls:
        if call.status != 200 or not call.path.startswith(post_path):
            continue
        body = call.json if isinstance(call.json, dict) else {}
        content = str(body.get("content") or "")
        if call.method == "POST" and call.path == post_path:
            out.append(Write(call.at, next(created), discord_answer_text(content)))
        elif call.method == "PATCH" and "content" in body:
            out.append(Write(call.at, call.path.rsplit("/", 1)[1], discord_answer_text(content)))
    return out


# --- the bot, in its own process -------------------------------------------------------------


def baseline_tree(folder: Path) -> Path | None:
    """A copy of the tree at `BASELINE` (git archive), or None when git cannot give one."""
    target = folder / "baseline"
    target.mkdir()
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT_DIR), "archive", BASELINE],
            capture_output=True,
            check=True,
            timeout=60,
        )
        subprocess.run(
            ["tar", "-x", "-C", str(target)], input=archive.stdout, check=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return target


class BotProcess:
    """`python -m bot run --platform <platform>` from `tree`, until it says it is running."""

    def __init__(self, tree: Path, platform: str, env: dict[str, str]) -> None:
        self.tree = tree
        self.platform = platform
        self.env = env
        self.lines: deque[str] = deque(maxlen=200)
        self._ready = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> BotProcess:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--platform",
            self.platform,
            cwd=self.tree,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())
        try:
            async with asyncio.timeout(60):
                while not self._ready.is_set():
                    if self._proc.returncode is not None:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._ready.wait(), 0.2)
        except TimeoutError:
            pass
        if not self._ready.is_set():
            await self.__aexit__()
            raise RuntimeError("the bot did not start:\n" + "".join(self.lines))
        return self

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        async for raw in self._proc.stderr:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            if "eachsense-bot is running" in line:
                self._ready.set()

    async def __aexit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)


def bot_env(
    folder: Path, tree: Path, sim: Simulator, *, database_url: str = "", **settings: str
) -> dict[str, str]:
    """A bot child's environment: its own SQLite file unless `database_url` says otherwise
    (replicas share one PostgreSQL)."""
    env = child_env(
        database_url=database_url or f"sqlite:///{folder / f'bot-{time.monotonic_ns()}.db'}",
        eachsense_api_key="bench-key",
        eachsense_base_url=sim.base_url,
        eachlabs_api_url=sim.url + "/eachlabs/v1",
        eachlabs_workflows_url=sim.url + "/workflows/api/v1",
        eachsense_max_retries="0",
        eachsense_idle_timeout="120",
        max_concurrent_turns="5000",
        max_turns_per_user="5000",
        shutdown_grace="0",
        log_level="INFO",
        http_host="127.0.0.1",
        http_port=str(free_port()),
        **settings,
    )
    env["PYTHONPATH"] = str(tree)
    return env


# --- running a scenario ----------------------------------------------------------------------


@dataclass
class Outcome:
    verdicts: list[Verdict] = field(default_factory=list)
    limited: int = 0  # 429s
    last: int = 0  # of those, the last run's (once an adaptive budget has learned)

    def add(self, other: Outcome) -> None:
        self.verdicts.extend(other.verdicts)
        self.limited += other.limited
        self.last = other.last


def figures_of(outcome: Outcome, prefix: str) -> dict[str, Any]:
    """Figures over every conversation; `done` over those that got there (`exact` says how
    many did: the others never showed exactly the answer)."""
    v = outcome.verdicts
    done = [x.done for x in v if x.done is not None]
    starts = [x.start for x in v if x.start is not None]
    return {
        f"{prefix}_done_p50_s": round(median(done), 3),
        f"{prefix}_done_p99_s": round(percentile(done, 99), 3),
        f"{prefix}_blind_max_s": round(max((x.blind for x in v), default=0.0), 3),
        f"{prefix}_blind_p50_s": round(median(x.blind for x in v), 3),
        f"{prefix}_exact": sum(x.exact for x in v),
        f"{prefix}_conversations": len(v),
        f"{prefix}_429": outcome.limited,
        f"{prefix}_429_last_run": outcome.last,
        f"{prefix}_messages_p50": median(x.messages for x in v),
        f"{prefix}_writes_p50": median(x.writes for x in v),
        f"{prefix}_start_p50_s": round(median(starts), 3),
        f"{prefix}_start_max_s": round(max(starts, default=math.nan), 3),
    }


async def _until(predicate: Any, *, within: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(poll)
    return True


async def _quiet(calls: Any, *, seconds: float = SETTLE, within: float = 30.0) -> None:
    """Wait until the fake received no call for `seconds` (tidy-ups after the finals)."""
    deadline = time.monotonic() + within
    count = len(calls())
    while time.monotonic() < deadline:
        await asyncio.sleep(seconds)
        now = len(calls())
        if now == count:
            return
        count = now


async def slack_run(
    slack: FakeSlack,
    sim: ScriptedSimulator,
    bot_url: str | Sequence[str],
    scenario: Scenario,
    run: int,
    tag: str,
) -> Outcome:
    """One run of `scenario`; with several `bot_url`s (replicas behind a load balancer) the
    conversations' commands go to them in turn."""
    urls = [bot_url] if isinstance(bot_url, str) else list(bot_url)
    scripts = [make_script(scenario, run, i) for i in range(scenario.conversations)]
    channels = [f"C{tag}{run}x{i}" for i in range(scenario.conversations)]
    for i, script in enumerate(scripts):
        sim.scripts[f"{tag}{run}-{i}"] = script
    limited_before = len(slack.ratelimited)
    async with aiohttp.ClientSession() as http:

        async def sense(i: int) -> None:
            scripts[i].sent = time.monotonic()
            body, headers = signed_command(
                f"answer:{tag}{run}-{i}",
                channel=channels[i],
                user=f"U{tag}{run}x{i}",
                response_url=slack.respond_url(),
            )
            async with http.post(urls[i % len(urls)], data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"/sense answered {response.status}")

        await asyncio.gather(*(sense(i) for i in range(scenario.conversations)))

    def footer(channel: str) -> bool:
        roots = slack.top_level(channel)
        return bool(roots) and any(
            DONE_SLACK in m.all_text for m in slack.thread(channel, roots[0].ts)
        )

    await _until(lambda: all(footer(c) for c in channels), within=RUN_DEADLINE)
    await _quiet(lambda: slack.calls)
    outcome = Outcome(limited=len(slack.ratelimited) - limited_before)
    for channel, script in zip(channels, scripts, strict=True):
        roots = slack.top_level(channel)
        if not roots or script.last is None:
            outcome.verdicts.append(Verdict(False, None, RUN_DEADLINE, 0, 0))
            continue
        outcome.verdicts.append(judge(slack_writes(slack, channel, roots[0].ts), script))
    return outcome


async def slack_scenario(
    tree: Path, folder: Path, scenario: Scenario, *, limits: bool, runs: int, tag: str
) -> Outcome:
    sim = ScriptedSimulator()
    slack: FakeSlack = LimitedSlack.slack_like() if limits else LimitedSlack()
    async with sim, slack:
        env = bot_env(
            folder,
            tree,
            sim,
            slack_bot_token=slack.bot_token,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.api_url,
        )
        async with BotProcess(tree, "slack", env):
            url = f"http://127.0.0.1:{env['HTTP_PORT']}/slack/events"
            total = Outcome()
            for run in range(runs):
                outcome = await slack_run(slack, sim, url, scenario, run, tag)
                outcome.last = outcome.limited  # the budgets start from Slack's tier and learn
                total.add(outcome)
    return total


def add_text_channel(fake: FakeDiscord, name: str) -> str:
    channel_id = fake.new_id()
    fake.channels[channel_id] = {
        **fake.channels[fake.channel_id],
        "id": channel_id,
        "name": name,
        "position": len(fake.channels),
        "last_message_id": None,
    }
    return channel_id


def _thread_of(fake: FakeDiscord, token: str) -> str | None:
    inter = fake.interactions.get(token)
    original = fake.messages.get(inter.original_id or "") if inter else None
    content = str(original["content"]) if original else ""
    return content.split("<#")[1].split(">")[0] if "<#" in content else None


async def discord_run(
    fake: FakeDiscord,
    sim: ScriptedSimulator,
    channels: Sequence[str],
    scenario: Scenario,
    run: int,
    tag: str,
) -> Outcome:
    scripts = [make_script(scenario, run, i) for i in range(scenario.conversations)]
    for i, script in enumerate(scripts):
        sim.scripts[f"{tag}{run}-{i}"] = script
    limited_before = fake.rate_limited
    for script in scripts:
        script.sent = time.monotonic()
    inters = await asyncio.gather(
        *(
            fake.slash("sense", {"prompt": f"answer:{tag}{run}-{i}"}, channel_id=channels[i])
            for i in range(scenario.conversations)
        )
    )

    def ended(token: str) -> bool:
        thread = _thread_of(fake, token)
        return thread is not None and any(
            DONE_SLACK in str(m["content"]) or "⚠️" in str(m["content"])
            for m in fake.channel_messages(thread)
        )

    await _until(lambda: all(ended(i.token) for i in inters), within=RUN_DEADLINE)
    await _quiet(lambda: fake.calls)
    outcome = Outcome(limited=fake.rate_limited - limited_before)
    for inter, script in zip(inters, scripts, strict=True):
        thread = _thread_of(fake, inter.token)
        if thread is None or script.last is None:
            outcome.verdicts.append(Verdict(False, None, RUN_DEADLINE, 0, 0))
            continue
        outcome.verdicts.append(judge(discord_writes(fake, thread), script))
    return outcome


async def discord_scenario(
    tree: Path, folder: Path, scenario: Scenario, *, runs: int, tag: str
) -> Outcome:
    sim = ScriptedSimulator()
    async with sim, FakeDiscord() as fake:
        channels = [fake.channel_id] + [
            add_text_channel(fake, f"bench-{i}") for i in range(1, scenario.conversations)
        ]
        env = bot_env(
            folder,
            tree,
            sim,
            discord_token=fake.token,
            discord_api_url=fake.api_url,
            discord_gateway_url=fake.gateway_url,
            discord_message_content="false",
        )
        async with BotProcess(tree, "discord", env):
            total = Outcome()
            for run in range(runs):
                total.add(await discord_run(fake, sim, channels, scenario, run, tag))
    return total


# --- the table -------------------------------------------------------------------------------


def compare(ours: Outcome, base: Outcome | None) -> dict[str, Any]:
    figures = figures_of(ours, "ours")
    if base is None:
        figures["baseline"] = f"unavailable (git archive {BASELINE} failed)"
        return figures
    figures.update(figures_of(base, "baseline"))
    for name in ("done_p50_s", "done_p99_s", "blind_max_s"):
        theirs = figures[f"baseline_{name}"]
        figures[f"{name.removesuffix('_s')}_ratio"] = (
            round(figures[f"ours_{name}"] / theirs, 3) if theirs else None
        )
    return figures


@contextlib.asynccontextmanager
async def trees() -> AsyncIterator[tuple[Path, Path | None, Path]]:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        yield ROOT_DIR, baseline_tree(folder), folder


async def slack_results(quick: bool) -> list[Result]:
    runs = 1 if quick else RUNS
    b = Scenario("B", 4, 200, 1_200, seconds=4.0) if quick else B
    a = Scenario("A", 1, 600, 4_000, seconds=4.0) if quick else A
    out: list[Result] = []
    async with trees() as (ours_tree, base_tree, folder):

        async def both(scenario: Scenario, *, limits: bool, tag: str) -> dict[str, Any]:
            ours = await slack_scenario(
                ours_tree, folder, scenario, limits=limits, runs=runs, tag=tag
            )
            base = None
            if base_tree is not None:
                base = await slack_scenario(
                    base_tree, folder, scenario, limits=limits, runs=1, tag=tag + "b"
                )
            return compare(ours, base)

        n = runs * b.conversations
        out.append(
            result(
                "answers_slack_B",
                await both(b, limits=True, tag="sb"),
                {
                    "ours_done_p99_s": "<= 2",
                    "ours_blind_max_s": "<= 5",
                    "ours_exact": f"== {n}",
                    "ours_429": "<= 5",  # a handful, while the budget learns
                    "ours_429_last_run": "== 0",  # and none once it has
                },
            )
        )
        out.append(
            result(
                "answers_slack_B_limits_off",
                await both(b, limits=False, tag="so"),
                {
                    "ours_done_p99_s": "<= 0.1",
                    "ours_blind_max_s": "<= 1.1",
                    "ours_exact": f"== {n}",
                },
            )
        )
        out.append(
            result(
                "answers_slack_A",
                await both(a, limits=True, tag="sa"),
                {"ours_exact": f"== {runs}"},
            )
        )
    return out


async def discord_results(quick: bool) -> list[Result]:
    runs = 1 if quick else RUNS
    a = Scenario("A", 1, 600, 4_000, seconds=4.0) if quick else A
    b20 = Scenario("B", 4, 200, 1_200, seconds=4.0) if quick else B
    b200 = Scenario("B200", 20 if quick else 200, B.deltas, B.chars)
    out: list[Result] = []
    async with trees() as (ours_tree, base_tree, folder):

        async def both(scenario: Scenario, *, tag: str, runs: int) -> dict[str, Any]:
            ours = await discord_scenario(ours_tree, folder, scenario, runs=runs, tag=tag)
            base = None
            if base_tree is not None:
                base = await discord_scenario(base_tree, folder, scenario, runs=1, tag=tag + "b")
            return compare(ours, base)

        out.append(
            result(
                "answers_discord_A",
                await both(a, tag="da", runs=runs),
                {"ours_done_p99_s": "<= 0.1", "ours_exact": f"== {runs}", "ours_429": "== 0"},
            )
        )
        out.append(
            result(
                "answers_discord_B",
                await both(b20, tag="db", runs=runs),
                {
                    "ours_blind_max_s": "<= 1.4",
                    "ours_exact": f"== {runs * b20.conversations}",
                    "ours_429": "== 0",
                },
            )
        )
        out.append(
            result(
                "answers_discord_B200",
                await both(b200, tag="dc", runs=1),
                {
                    "ours_blind_max_s": "<= 1.4",
                    "ours_exact": f"== {b200.conversations}",
                    "ours_429": "== 0",
                },
            )
        )
    return out


def run(quick: bool = False, only: str = "") -> list[Result]:
    out: list[Result] = []
    if only in ("", "slack"):
        out += asyncio.run(slack_results(quick))
    if only in ("", "discord"):
        out += asyncio.run(discord_results(quick))
    return out


if __name__ == "__main__":
    which = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else ""
    for item in run(quick="--quick" in sys.argv, only=which):
        print(item)
