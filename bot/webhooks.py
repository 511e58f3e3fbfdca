"""`POST /webhooks/eachlabs/{job_id}`: Eachlabs reporting that a run ended.

Each job gets its own secret (made by the bot when it created the run and sent as
`webhook_secret`). Eachlabs sends that secret back verbatim in `X-Webhook-Secret` (the
payload reference as rewritten in 2026-07; no body signature): a delivery is trusted when the
header equals the job's secret (compared in constant time). Older pages describe an HMAC
instead, `X-Webhook-Signature: sha256=<hex>` over `"<X-Webhook-Timestamp>.<raw body>"` with a
timestamp within five minutes; that form is accepted too, should it ever appear. Everything
else gets a bare 401 (no detail for a prober to learn from).

Eachlabs delivers up to three times, about 10 s apart, and retries on any non-2xx. A repeat
of a delivery already accepted (same job and body, or same timestamp and signature) is
answered 200 (it must not be told to try again) but not acted on, and so is a delivery for a
job that has already finished. Distinct deliveries of the same result are made harmless by
`store.finish_job`, which lets only one of them post.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping

from aiohttp import web

from bot.arguments import is_id
from bot.jobs import Jobs

log = logging.getLogger(__name__)

MAX_SKEW = 300.0
_SEEN_MAX = 10_000
_LOGGED_ID = 40  # characters of a caller-chosen job id a log line shows


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


def secret_ok(secret: str, given: str) -> bool:
    """True when the `X-Webhook-Secret` header `given` is the job's `secret`."""
    return bool(given) and hmac.compare_digest(given.encode(), secret.encode())


def webhook_routes(jobs: Jobs) -> list[web.RouteDef]:
    """The webhook route, bound to `jobs`; mount it on the bot's HTTP server."""
    seen: OrderedDict[tuple[str, ...], None] = OrderedDict()

    def authentic(request: web.Request, secret: str, body: bytes) -> tuple[str, ...] | None:
        """The delivery's identity when it proves it knows `secret`, else None."""
        job_id = request.match_info["job_id"]
        if secret_ok(secret, request.headers.get("X-Webhook-Secret", "")):
            # Retries repeat the body exactly: the body names the delivery.
            return (job_id, "secret", hashlib.sha256(body).hexdigest())
        timestamp = request.headers.get("X-Webhook-Timestamp", "")
        signature = request.headers.get("X-Webhook-Signature", "")
        if signature and signature_ok(
            secret, timestamp=timestamp, signature=signature, body=body, now=jobs.clock()
        ):
            return (job_id, "hmac", timestamp, signature)
        return None

    async def receive(request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        # Anyone can call this URL: until the job is known, its id is the caller's text, so
        # it is format-checked, shortened and logged only as a repr (no forged log lines).
        if not is_id(job_id):
            log.warning("rejected a webhook for a malformed job id %r", job_id[:_LOGGED_ID])
            return web.Response(status=401)
        body = await request.read()  # the raw bytes: a signature covers them exactly
        secret = await jobs.webhook_secret(job_id)
        delivery = None if secret is None else authentic(request, secret, body)
        if delivery is None:
            log.warning(
                "rejected a webhook for job %r (unknown job, bad secret or signature)",
                job_id[:_LOGGED_ID],
            )
            return web.Response(status=401)
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
