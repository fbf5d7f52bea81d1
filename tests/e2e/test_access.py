"""Who sees and may call which model; request validation errors."""

from __future__ import annotations

import openai
import pytest

from conftest import NOBODY_KEY, NOVA_ONLY_KEY, QUICKSTART_KEY
from contracts import SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY
from e2e_helpers import DEMO_MODELS, converse_calls, error_body

HELLO = [{"role": "user", "content": "hello"}]


def assert_no_secrets(err: dict) -> None:
    text = str(err)
    for secret in (SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY, QUICKSTART_KEY, NOBODY_KEY, NOVA_ONLY_KEY):
        assert secret not in text, f"error leaks {secret!r}: {err}"


# -------------------------------------------------------------------- models
def test_models_list_quickstart_key(client):
    page = client.models.list()
    models = list(page)
    assert sorted(m.id for m in models) == DEMO_MODELS
    for m in models:
        assert m.object == "model"
        assert m.owned_by == "demo"
        assert isinstance(m.created, int)


def test_models_list_nobody_key(client_for):
    assert list(client_for(NOBODY_KEY).models.list()) == []


def test_models_list_nova_only_key(client_for):
    assert [m.id for m in client_for(NOVA_ONLY_KEY).models.list()] == ["demo/nova-lite"]


def test_models_list_raw_shape(http):
    r = http.get("/v1/models", headers={"Authorization": f"Bearer {QUICKSTART_KEY}"})
    assert r.status_code == 200
    doc = r.json()
    assert doc["object"] == "list"
    assert sorted(m["id"] for m in doc["data"]) == DEMO_MODELS
    kinds = {"demo/titan-embed-v2": "embedding", "demo/cohere-embed": "embedding", "demo/nova-canvas": "image"}
    kinds["demo/sd35"] = "image"
    assert {m["id"]: m["kind"] for m in doc["data"]} == {m: kinds.get(m, "chat") for m in DEMO_MODELS}
    assert all(m["object"] == "model" and m["owned_by"] == "demo" for m in doc["data"])
    caps = {m["id"]: m.get("capabilities") for m in doc["data"]}
    assert caps["demo/claude-sonnet"] == {"images": True, "documents": True, "tools": True, "reasoning": True}
    assert caps["demo/nova-lite"]["reasoning"] is False
    assert caps["demo/titan-embed-v2"] is None


# ---------------------------------------------------------------------- 401
def test_wrong_api_key_is_401(client_for, sim):
    c = client_for("sk-bgw-not-a-key")
    with pytest.raises(openai.AuthenticationError) as ei:
        c.chat.completions.create(model="demo/nova-lite", messages=HELLO)
    err = error_body(ei.value)
    assert ei.value.status_code == 401
    assert err["type"] == "authentication_error"
    assert err["code"] == "invalid_api_key"
    assert_no_secrets(err)
    with pytest.raises(openai.AuthenticationError):
        c.models.list()
    assert converse_calls(sim) == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}, {"Authorization": QUICKSTART_KEY}],
    ids=["none", "basic", "empty-bearer", "no-scheme"],
)
def test_missing_or_malformed_authorization_is_401(http, sim, headers):
    r = http.post("/v1/chat/completions", headers=headers, json={"model": "demo/nova-lite", "messages": HELLO})
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == "invalid_api_key"
    assert err["type"] == "authentication_error"
    r = http.get("/v1/models", headers=headers)
    assert r.status_code == 401
    assert converse_calls(sim) == []


def test_auth_is_checked_before_the_model(http):
    r = http.post("/v1/chat/completions", json={"model": "demo/does-not-exist", "messages": HELLO})
    assert r.status_code == 401


# ---------------------------------------------------------------------- 403
@pytest.mark.parametrize(
    "key, model",
    [
        (QUICKSTART_KEY, "other/secret-model"),
        (NOBODY_KEY, "demo/nova-lite"),
        (NOVA_ONLY_KEY, "demo/claude-sonnet"),
        (NOBODY_KEY, "other/secret-model"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_model_not_granted_is_403(client_for, sim, key, model, stream):
    with pytest.raises(openai.PermissionDeniedError) as ei:
        client_for(key).chat.completions.create(model=model, messages=HELLO, stream=stream)
    assert ei.value.status_code == 403
    err = error_body(ei.value)
    assert err["type"] == "permission_error"
    # The message names the model asked for and nothing else (no other tenant's model).
    assert err["message"] == f"You do not have access to the model `{model}`."
    assert_no_secrets(err)
    assert converse_calls(sim) == []


def test_granted_model_works_for_nova_only_key(client_for):
    r = client_for(NOVA_ONLY_KEY).chat.completions.create(model="demo/nova-lite", messages=HELLO)
    assert r.choices[0].message.content == "Simulated reply to: hello"


# ---------------------------------------------------------------------- 404
@pytest.mark.parametrize("model", ["demo/does-not-exist", "nope", "missing-account/claude-sonnet", "gpt-4o"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_unknown_model_is_404(client, sim, model, stream):
    with pytest.raises(openai.NotFoundError) as ei:
        client.chat.completions.create(model=model, messages=HELLO, stream=stream)
    assert ei.value.status_code == 404
    err = error_body(ei.value)
    assert err["code"] == "model_not_found"
    assert err["param"] == "model"
    assert err["type"] == "invalid_request_error"
    assert model in err["message"]
    assert converse_calls(sim) == []


# ---------------------------------------------------------------------- 400
AUTH = {"Authorization": f"Bearer {QUICKSTART_KEY}"}


@pytest.mark.parametrize(
    "raw",
    [b'{"model": "demo/nova-lite", "messages": [', b"not json at all", b"", b"[1, 2, 3]"],
    ids=["truncated", "text", "empty", "array"],
)
def test_malformed_json_is_400(http, sim, raw):
    r = http.post("/v1/chat/completions", headers={**AUTH, "Content-Type": "application/json"}, content=raw)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["message"]
    assert converse_calls(sim) == []


@pytest.mark.parametrize(
    "body, param",
    [
        ({"messages": HELLO}, "model"),
        ({"model": "demo/nova-lite"}, "messages"),
        ({"model": "demo/nova-lite", "messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"model": "demo/nova-lite", "messages": [{"role": "user", "content": "a"}, {"role": "user"}]}, "messages[1].content"),
    ],
    ids=["model", "messages", "role", "content"],
)
def test_missing_field_is_400_naming_it(http, sim, body, param):
    r = http.post("/v1/chat/completions", headers=AUTH, json=body)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param
    assert param in err["message"]
    assert converse_calls(sim) == []


def test_invalid_values_are_400(client, sim):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="demo/nova-lite", messages=[{"role": "wizard", "content": "hi"}])
    assert error_body(ei.value)["param"] == "messages[0].role"
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="demo/nova-lite", messages=[])
    assert error_body(ei.value)["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="demo/nova-lite", messages=HELLO, temperature=3)
    assert error_body(ei.value)["param"] == "temperature"
    assert converse_calls(sim) == []
