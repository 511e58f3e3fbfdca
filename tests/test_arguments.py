"""Ids a person types are checked before they reach an Eachlabs URL (`bot.arguments`, and the
clients in `bot.eachlabs` as the second line): `../` in a chat message never steers the
operator's key to another endpoint. The end-to-end tests point the real core at a tiny
aiohttp server that records every path it is asked for."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from adapters.shell import Shell
from bot.app import build_core, close_core
from bot.arguments import is_id, is_model_slug, parse_predict_args, parse_workflow_args
from bot.eachlabs import PredictionsClient, WorkflowsClient
from bot.errors import InputError, ServerError
from bot.models import ThreadKey
from tests.conftest import make_settings
from tests.util import RecordingSurface

EVIL = "../../prediction/p-victim/cancel?"
KEY = ThreadKey("shell", "local", "local", "t1")


def test_ids_and_slugs() -> None:
    for good in ("wf_abc123", "A-b_9", "x" * 100, "0"):
        assert is_id(good)
    for bad in ("", "x" * 101, "..", "a/b", "a.b", "a b", "a?b", "a%2Fb", "é", "a\n"):
        assert not is_id(bad), bad
    for good in ("flux-pro/v1.1", "veo3", "kling-v2-1-master-text-to-video", "a/b/c.d_e"):
        assert is_model_slug(good)
    for bad in ("", "/x", "x/", "a//b", "../x", "a/../b", "a/./b", ".x", "a?b", "a b", "x" * 101):
        assert not is_model_slug(bad), bad


def test_parsers_refuse_bad_ids_with_a_sentence() -> None:
    with pytest.raises(InputError) as caught:
        parse_workflow_args(f'"{EVIL}" a=b')
    assert "workflow id is not valid" in caught.value.user_message
    assert "letters, digits" in caught.value.user_message
    with pytest.raises(InputError) as caught:
        parse_workflow_args("x" * 101)
    assert "workflow id is not valid" in caught.value.user_message
    with pytest.raises(InputError) as caught:
        parse_predict_args("../../prediction/p1/cancel a fox")
    assert "model name is not valid" in caught.value.user_message
    assert parse_predict_args("flux-pro/v1.1 a fox") == ("flux-pro/v1.1", "a fox")
    assert parse_workflow_args("wf-1_a k='v w'") == ("wf-1_a", {"k": "v w"})


@dataclass
class Recorder:
    """Answers every request like each::api would for a quick run, and records its path."""

    paths: list[str] = field(default_factory=list)
    execution_id: str = "e1"
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(f"{request.method} {request.raw_path}")
        return web.json_response(
            {
                "status": "completed",
                "execution_id": self.execution_id,
                "predictionID": self.execution_id,
                "output": [],
            }
        )


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield rec
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("api", ["current", "legacy"])
async def test_sense_workflow_with_a_path_never_reaches_another_endpoint(
    recorder: Recorder, api: str
) -> None:
    settings = make_settings(
        eachsense_api_key="sk-test",
        eachlabs_api_url=recorder.url + "/v1",
        eachlabs_workflows_url=recorder.url + "/legacy/v1",
        workflows_api=api,
    )
    core = await build_core(settings)
    try:
        out = io.StringIO()
        shell = Shell(core, out=out)
        await shell.handle_line(f'/workflow "{EVIL}" a=b')
        assert "workflow id is not valid" in out.getvalue()
        # the Discord path hands the id to the core unparsed: the client refuses it too
        assert core.jobs is not None
        surface = RecordingSurface()
        await core.jobs.run_workflow(
            key=KEY, user_id="u1", workflow_id=EVIL, inputs={"a": "b"}, surface=surface
        )
        assert "workflow id is not valid" in surface.all_text()
        assert recorder.paths == []
        # a well-formed id goes exactly where it should (the recorder does answer)
        await shell.handle_line("/workflow wf_ok a=b")
        trigger = (
            "/v1/workflows/trigger/wf_ok/latest" if api == "current" else "/legacy/v1/wf_ok/trigger"
        )
        assert recorder.paths[0] == f"POST {trigger}"
        assert all("prediction" not in path for path in recorder.paths)
    finally:
        await close_core(core)


async def test_clients_refuse_bad_ids_before_sending(recorder: Recorder) -> None:
    async with aiohttp.ClientSession() as session:
        base = recorder.url + "/v1"
        workflows = WorkflowsClient(session, api_key="k", base_url=base)
        predictions = PredictionsClient(session, api_key="k", base_url=base)
        with pytest.raises(InputError):
            await workflows.trigger(EVIL, {})
        with pytest.raises(InputError) as caught:
            await workflows.trigger("wf_ok", {}, version_id="../../x")
        assert "version id is not valid" in caught.value.user_message
        with pytest.raises(InputError) as caught:
            await predictions.create("../../prediction/p1/cancel", {"prompt": "x"})
        assert "model name is not valid" in caught.value.user_message
        for remote in (EVIL, "..", "p1/cancel", "p1?x=1", "p1#x", ""):
            with pytest.raises(ServerError):
                await predictions.get(remote)
            with pytest.raises(ServerError):
                await predictions.cancel(remote)
            with pytest.raises(ServerError):
                await workflows.get(remote)
        assert recorder.paths == []
        # an id Eachlabs sends back is checked as well before it is ever used in a path
        recorder.execution_id = "../prediction/p-victim/cancel"
        with pytest.raises(ServerError) as refused:
            await workflows.trigger("wf_ok", {})
        assert "run id I cannot use" in refused.value.user_message
        with pytest.raises(ServerError) as refused:
            await predictions.create("flux-pro/v1.1", {"prompt": "x"})
        assert "run id I cannot use" in refused.value.user_message
        assert recorder.paths == [
            "POST /v1/workflows/trigger/wf_ok/latest",
            "POST /v1/prediction",
        ]
