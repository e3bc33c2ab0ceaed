"""The HTTP service, over real sockets: uvicorn serving on a free loopback port, httpx calling it."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from agent_assist import (  # noqa: E402
    Assistant,
    EmotionResult,
    QAResult,
    ReplyCheck,
    Suggestion,
    Triage,
    default_assistant,
)
from agent_assist.server import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
JSON = {"Content-Type": "application/json"}
TRANSCRIPT = {
    "id": "c1",
    "turns": [
        {"speaker": "客户", "text": "等了12天还没到货，太失望了"},
        {"speaker": "客服", "text": "非常抱歉让您久等了，您是说订单已经等了12天，对吗？"},
        {"speaker": "客户", "text": "对"},
        {"speaker": "客服", "text": "我马上为您催促物流，今天18点前给您回电，感谢您的耐心。"},
    ],
}


class LiveServer:
    """uvicorn in a background thread, on a socket already bound to a free 127.0.0.1 port."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))  # port 0: the kernel picks a free one, no race
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        self.client = httpx.Client(base_url=self.url, timeout=10)
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with LiveServer(create_app()) as c:
        yield c


@pytest.fixture(scope="module")
def small() -> Iterator[httpx.Client]:
    """Tight limits, an API key and one CORS origin."""
    app = create_app(
        api_key="s3cret-key",
        cors_origins=["chrome-extension://abc"],
        max_body_bytes=2_000,
        max_field_chars=50,
    )
    with LiveServer(app) as c:
        yield c


KEY = {"X-API-Key": "s3cret-key"}


def post(c: httpx.Client, path: str, body: Any, **headers: str) -> httpx.Response:
    return c.post(path, content=json.dumps(body, ensure_ascii=False).encode(), headers={**JSON, **headers})


def assert_error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in r.text
    return body


# --- every endpoint, shapes and values --------------------------------------------------------


def test_health(client: httpx.Client) -> None:
    r = client.get("/v1/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_emotion_matches_the_library(client: httpx.Client) -> None:
    text = "这已经是我第三次打电话了，到底有没有人管？！"
    r = post(client, "/v1/emotion", {"text": text})
    assert r.status_code == 200
    got = EmotionResult.model_validate(r.json())
    assert got.tier == "anger"
    assert r.json() == default_assistant().detect_emotion(text).model_dump(mode="json")
    assert all(text[e.start : e.end] == e.text for e in got.evidence)


def test_triage(client: httpx.Client) -> None:
    body = {
        "text": "新买的电水壶用了三天底座就冒烟了",
        "history": ["上周买的", {"speaker": "agent", "text": "您好"}],
        "now": "2024-05-01T10:00:00+08:00",
    }
    r = post(client, "/v1/triage", body)
    assert r.status_code == 200, r.text
    t = Triage.model_validate(r.json())
    assert t.safety and t.level == "P1"
    assert r.json()["deadlines"]["acknowledge"] == "PT30M"
    assert t.deadlines.acknowledge_by is not None


def test_check(client: httpx.Client) -> None:
    r = post(
        client,
        "/v1/check",
        {
            "reply": "这是物流的问题，和我们无关。",
            "customer_text": "货呢？",
            "history": [{"speaker": "customer", "text": "货呢？"}],
        },
    )
    assert r.status_code == 200
    check = ReplyCheck.model_validate(r.json())
    assert not check.ok and check.hits[0].kind == "blame_shifting"


def test_suggest(client: httpx.Client) -> None:
    history = ["我的订单呢", {"speaker": "agent", "text": "您好，我查一下"}]
    r = post(
        client, "/v1/suggest", {"customer_text": "等了12天还没到货，太失望了", "history": history, "n": 2}
    )
    assert r.status_code == 200, r.text
    s = Suggestion.model_validate(r.json())
    assert s.emotion.tier == "disappointment" and 1 <= len(s.replies) <= 2
    assert r.json() == default_assistant().suggest(
        "等了12天还没到货，太失望了", history=history, n=2
    ).model_dump(mode="json")
    r = post(client, "/v1/suggest", {"customer_text": "算了，你們看著辦吧"})  # defaults: n=3, no history
    assert r.status_code == 200 and Suggestion.model_validate(r.json()).script == "traditional"


@pytest.mark.parametrize("wrapped", [True, False])
def test_qa(client: httpx.Client, wrapped: bool) -> None:
    r = post(client, "/v1/qa", {"transcript": TRANSCRIPT} if wrapped else TRANSCRIPT)
    assert r.status_code == 200, r.text
    result = QAResult.model_validate(r.json())
    assert result.id == "c1" and result.error is None and result.score is not None


def test_qa_unscorable_transcript_is_422(client: httpx.Client) -> None:
    bad = {"id": "c2", "turns": [{"speaker": "路人", "text": "你好"}]}
    body = assert_error(post(client, "/v1/qa", bad), 422)
    assert "speaker" in body["error"]
    assert_error(post(client, "/v1/qa", {"id": "c3", "turns": []}), 422)


def test_openapi_lists_every_endpoint(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert set(doc["paths"]) >= {
        f"/v1/{p}" for p in ("emotion", "triage", "check", "suggest", "qa", "health")
    }
    schemas = doc["components"]["schemas"]
    assert {"EmotionResult", "Triage", "ReplyCheck", "Suggestion", "QAResult", "ErrorBody"} <= set(schemas)
    ok = doc["paths"]["/v1/emotion"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/EmotionResult")


# --- bad input: always a short JSON 4xx ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "text"),
        ({"text": 123}, "text"),
        ({"text": ["a"]}, "text"),
        ({"txt": "a"}, "text"),
    ],
)
def test_missing_or_wrong_fields_are_422(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    got = assert_error(post(client, "/v1/emotion", body), 422)
    assert got["fields"][0]["field"] == field
    assert got["error"].startswith(f"invalid request: {field}:")


def test_nested_field_errors_name_the_field(client: httpx.Client) -> None:
    got = assert_error(
        post(client, "/v1/check", {"reply": "好的", "history": [{"speaker": "boss", "text": "x"}]}), 422
    )
    assert got["fields"][0]["field"] == "history[0].speaker"
    got = assert_error(post(client, "/v1/suggest", {"customer_text": "x", "n": 0}), 422)
    assert got["fields"][0]["field"] == "n"
    got = assert_error(post(client, "/v1/suggest", {"customer_text": "x", "n": "3"}), 422)
    assert got["fields"][0]["field"] == "n"


def test_not_json_is_422_and_wrong_content_type_415(client: httpx.Client) -> None:
    got = assert_error(client.post("/v1/emotion", content=b'{"text": ', headers=JSON), 422)
    assert "not valid JSON" in got["error"]
    assert_error(client.post("/v1/emotion", content=b"", headers=JSON), 422)
    assert_error(
        client.post("/v1/emotion", content=b'{"text": "x"}', headers={"Content-Type": "text/plain"}), 415
    )
    assert_error(client.get("/v1/nowhere"), 404)
    assert_error(client.get("/v1/emotion"), 405)


def test_over_long_field_is_422(small: httpx.Client) -> None:
    got = assert_error(post(small, "/v1/emotion", {"text": "气" * 51}, **KEY), 422)
    assert got["fields"][0]["field"] == "text" and "50" in got["fields"][0]["message"]
    got = assert_error(
        post(
            small,
            "/v1/check",
            {"reply": "好", "history": [{"speaker": "customer", "text": "等" * 51}]},
            **KEY,
        ),
        422,
    )
    assert got["fields"][0]["field"] == "history[0].text"
    assert post(small, "/v1/emotion", {"text": "气" * 50}, **KEY).status_code == 200


def test_too_large_body_is_413_before_parsing(small: httpx.Client) -> None:
    # Declared by Content-Length:
    big = json.dumps({"text": "a" * 3_000}).encode()
    assert_error(small.post("/v1/emotion", content=big, headers={**JSON, **KEY}), 413)

    # Streamed without a Content-Length (chunked), counted as it arrives; not even valid JSON.
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"[" * 500

    assert_error(small.post("/v1/emotion", content=chunks(), headers={**JSON, **KEY}), 413)


# --- API key, CORS, errors --------------------------------------------------------------------


def test_api_key(small: httpx.Client) -> None:
    body = {"text": "你好"}
    assert_error(post(small, "/v1/emotion", body), 401)
    assert_error(post(small, "/v1/emotion", body, **{"X-API-Key": "wrong"}), 401)
    assert_error(post(small, "/v1/emotion", body, **{"X-API-Key": "s3cret-ke"}), 401)
    assert_error(post(small, "/v1/emotion", body, Authorization="Bearer nope"), 401)
    assert post(small, "/v1/emotion", body, **KEY).status_code == 200
    assert post(small, "/v1/emotion", body, Authorization="Bearer s3cret-key").status_code == 200
    assert small.get("/v1/health").status_code == 200  # stays open
    assert small.get("/openapi.json").status_code == 200
    assert_error(small.get("/v1/nowhere"), 401)  # everything else needs the key, even a 404


def test_no_api_key_configured_means_open(client: httpx.Client) -> None:
    assert post(client, "/v1/emotion", {"text": "你好"}).status_code == 200


def test_cors_off_by_default(client: httpx.Client) -> None:
    r = post(client, "/v1/emotion", {"text": "你好"}, Origin="chrome-extension://abc")
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    pre = client.options(
        "/v1/emotion", headers={"Origin": "chrome-extension://abc", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in pre.headers


def test_cors_when_configured(small: httpx.Client) -> None:
    origin = "chrome-extension://abc"
    pre = small.options(
        "/v1/emotion",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        },
    )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == origin
    r = post(small, "/v1/emotion", {"text": "你好"}, Origin=origin, **KEY)
    assert r.headers["access-control-allow-origin"] == origin
    other = post(small, "/v1/emotion", {"text": "你好"}, Origin="https://evil.example", **KEY)
    assert "access-control-allow-origin" not in other.headers


class _Broken(Assistant):
    def detect_emotion(self, text: str) -> EmotionResult:
        if text == "boom":
            raise RuntimeError("secret internal detail")
        return super().detect_emotion(text)


def test_unexpected_error_is_a_bare_500_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with (
        LiveServer(create_app(_Broken(default_assistant().phrasebook))) as c,
        caplog.at_level(logging.ERROR, logger="agent_assist"),
    ):
        r = post(c, "/v1/emotion", {"text": "boom"})
        assert r.status_code == 500
        assert r.json() == {"error": "internal error"}
        assert post(c, "/v1/emotion", {"text": "好"}).status_code == 200  # the server lives on
    assert any("secret internal detail" in (rec.exc_text or str(rec.exc_info)) for rec in caplog.records)


# --- the command line --------------------------------------------------------------------------


def _listening_addresses(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            for line in list(f)[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, p = local.split(":")
                if state == "0A" and int(p, 16) == port:  # 0A: LISTEN
                    found.add(addr)
    return found


def test_cli_serve_binds_loopback_by_default(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "AGENT_ASSIST_API_KEY": "from-env"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent_assist", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()  # type: ignore[union-attr]
            time.sleep(0.1)
        if os.path.exists("/proc/net/tcp"):
            assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1 only
        r = httpx.post(f"{url}/v1/emotion", json={"text": "你好"})
        assert r.status_code == 401  # the key came from the environment
        r = httpx.post(f"{url}/v1/emotion", json={"text": "你好"}, headers={"X-API-Key": "from-env"})
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()  # type: ignore[union-attr]


def test_cli_without_the_server_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agent_assist import cli

    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi -> ImportError
    monkeypatch.delitem(sys.modules, "agent_assist.server")
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "agent_assist[server]" in err and "fastapi" in err


def test_serve_defaults_to_loopback() -> None:
    import inspect

    from agent_assist import cli, server

    assert inspect.signature(server.serve).parameters["host"].default == "127.0.0.1"
    assert cli.build_parser().parse_args(["serve"]).host == "127.0.0.1"


def test_history_strings_are_customer_turns(client: httpx.Client) -> None:
    with_strings = post(client, "/v1/check", {"reply": "好的", "history": ["我要退款"]})
    with_turns = post(
        client, "/v1/check", {"reply": "好的", "history": [{"speaker": "customer", "text": "我要退款"}]}
    )
    assert with_strings.status_code == 200 and with_strings.json() == with_turns.json()
    got = assert_error(post(client, "/v1/suggest", {"customer_text": "x", "history": ["好", 5]}), 422)
    assert [f["field"] for f in got["fields"]] == ["history[1]"]
