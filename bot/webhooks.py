"""`POST /webhooks/eachlabs/{job_id}`: Eachlabs reporting that a run ended.

Each job gets its own secret (made by the bot when it created the run), so a delivery is
trusted only when `X-Webhook-Signature: sha256=<hex>` is the HMAC-SHA256 of
`"<X-Webhook-Timestamp>.<raw body>"` under that job's secret and the timestamp is within five
minutes of now. Everything else gets a bare 401 (no detail for a prober to learn from).

Eachlabs delivers up to three times. A repeat of a delivery already accepted (same job,
timestamp and signature) is a replay: it is answered 200 (a genuine retry may look exactly like
that, and must not be told to try again) but never acted on. Distinct deliveries of the same
result are made harmless by `store.finish_job`, which lets only one of them post.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping

from aiohttp import web

from bot.jobs import Jobs

log = logging.getLogger(__name__)

MAX_SKEW = 300.0
_SEEN_MAX = 10_000


def sign(secret: str, *, timestamp: str, body: bytes) -> str:
    """The `X-Webhook-Signature` value for `body` (also used by the simulator and tests)."""
    message = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _timestamp(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    # Tolerate milliseconds: nothing documents the unit, and Unix seconds stay under 1e11.
    return value / 1000 if value > 1e11 else value


def signature_ok(secret: str, *, timestamp: str, signature: str, body: bytes, now: float) -> bool:
    """True when `signature` signs `timestamp.body` with `secret` and the time is fresh."""
    sent_at = _timestamp(timestamp)
    if sent_at is None or abs(now - sent_at) > MAX_SKEW:
        return False
    given = signature.strip()
    given = given if given.startswith("sha256=") else "sha256=" + given
    expected = sign(secret, timestamp=timestamp, body=body)
    return hmac.compare_digest(given.encode(), expected.encode())


def webhook_routes(jobs: Jobs) -> list[web.RouteDef]:
    """The webhook route, bound to `jobs`; mount it on the bot's HTTP server."""
    seen: OrderedDict[tuple[str, str, str], None] = OrderedDict()

    async def receive(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        body = await request.read()  # the raw bytes: the signature covers them exactly
        timestamp = request.headers.get("X-Webhook-Timestamp", "")
        signature = request.headers.get("X-Webhook-Signature", "")
        secret = await jobs.webhook_secret(job_id)
        if secret is None or not signature_ok(
            secret, timestamp=timestamp, signature=signature, body=body, now=jobs.clock()
        ):
            log.warning(
                "rejected a webhook for job %s (unknown job, bad or stale signature)", job_id[:40]
            )
            return web.Response(status=401)
        delivery = (job_id, timestamp, signature)
        if delivery in seen:
            log.info("ignored a repeated webhook delivery for job %s", job_id)
            return web.json_response({"ok": True})
        seen[delivery] = None
        while len(seen) > _SEEN_MAX:
            seen.popitem(last=False)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, Mapping):
            log.warning("webhook for job %s is not a JSON object; ignored", job_id)
            return web.json_response({"ok": True})
        await jobs.on_webhook(job_id, payload)
        return web.json_response({"ok": True})

    return [web.post("/webhooks/eachlabs/{job_id}", receive)]
