"""Embeddings, image generation and image edits through the official OpenAI SDK.

Vectors and images come from bedrock-sim, which is deterministic: ``sim_vector`` computes
exactly the vector the simulator returns for a text (see ``bedrock_sim::embedding_vector``),
and every image is a real PNG whose header and pixel data are checked with zlib.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import struct
import zlib

import openai
import pytest

from e2e_helpers import INVOKE_MODELS, body_of, error_body

MASK64 = (1 << 64) - 1


def sim_vector(seed_text: str, dims: int, normalize: bool) -> list[float]:
    """The float32 vector bedrock-sim returns for ``seed_text`` (Rust: ``embedding_vector``)."""
    data = seed_text.encode()
    state = int.from_bytes(hashlib.sha256(len(data).to_bytes(8, "little") + data).digest()[:8], "little")
    raw = []
    for _ in range(dims):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z ^= z >> 31
        raw.append((z >> 40) / 8388608.0 - 1.0)
    if normalize:
        norm = math.sqrt(sum(x * x for x in raw))
        raw = [x / norm for x in raw]
    return [f32(x) for x in raw]


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def invoke_calls(sim, served: str) -> list[dict]:
    path = f"/model/{INVOKE_MODELS[served]}/invoke"
    return [r for r in sim.requests() if r["path"] == path]


def png_size(b64: str) -> tuple[int, int]:
    """Width and height of a base64 PNG, after checking its chunks and inflating its pixels."""
    png = base64.b64decode(b64)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data), kind
        chunks.setdefault(kind, b"")
        chunks[kind] += data
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 0)
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (width + 1)
    assert b"IEND" in chunks
    return width, height


# ------------------------------------------------------------------ embeddings
def test_single_string_decoded_from_base64_by_the_sdk(client, sim):
    r = client.embeddings.create(model="demo/titan-embed-v2", input="hello gateway")
    assert r.object == "list" and r.model == "demo/titan-embed-v2"
    assert [d.index for d in r.data] == [0]
    assert r.data[0].embedding == sim_vector("hello gateway", 1024, True)
    assert (r.usage.prompt_tokens, r.usage.total_tokens) == (2, 2)
    (call,) = invoke_calls(sim, "demo/titan-embed-v2")
    assert body_of(call) == {"inputText": "hello gateway"}


def test_list_keeps_input_order_with_concurrent_calls(client, sim):
    texts = [f"sentence number {i} of the batch" for i in range(25)]
    r = client.embeddings.create(model="demo/titan-embed-v2", input=texts, encoding_format="float")
    assert [d.index for d in r.data] == list(range(25))
    for text, item in zip(texts, r.data):
        assert [f32(x) for x in item.embedding] == sim_vector(text, 1024, True)
    assert r.usage.prompt_tokens == 25 * 6
    assert sorted(body_of(c)["inputText"] for c in invoke_calls(sim, "demo/titan-embed-v2")) == sorted(texts)


def test_explicit_base64_is_little_endian_float32(client):
    # Asked for explicitly, the SDK hands the base64 text over as it came.
    as_b64 = client.embeddings.create(model="demo/titan-embed-v2", input="same text", encoding_format="base64")
    raw = base64.b64decode(as_b64.data[0].embedding)
    assert len(raw) == 4 * 1024
    assert list(struct.unpack("<1024f", raw)) == sim_vector("same text", 1024, True)
    as_float = client.embeddings.create(model="demo/titan-embed-v2", input="same text", encoding_format="float")
    assert [f32(x) for x in as_float.data[0].embedding] == sim_vector("same text", 1024, True)


def test_dimensions_reach_titan(client, sim):
    r = client.embeddings.create(model="demo/titan-embed-v2", input="short", dimensions=256)
    assert r.data[0].embedding == sim_vector("short", 256, True)
    assert body_of(invoke_calls(sim, "demo/titan-embed-v2")[0]) == {"inputText": "short", "dimensions": 256}


def test_cohere_batches_and_input_type(client, sim):
    texts = [f"document {i}" for i in range(100)]
    r = client.embeddings.create(model="demo/cohere-embed", input=texts, extra_body={"input_type": "search_query"})
    assert len(r.data) == 100
    for i in (0, 95, 96, 99):
        assert r.data[i].embedding == sim_vector(f"search_query:document {i}", 1024, False)
    assert r.usage.prompt_tokens == 200
    batches = sorted(len(body_of(c)["texts"]) for c in invoke_calls(sim, "demo/cohere-embed"))
    assert batches == [4, 96]


def test_cohere_defaults_to_search_document(client, sim):
    r = client.embeddings.create(model="demo/cohere-embed", input="a passage")
    assert r.data[0].embedding == sim_vector("search_document:a passage", 1024, False)
    assert body_of(invoke_calls(sim, "demo/cohere-embed")[0])["input_type"] == "search_document"


@pytest.mark.parametrize(
    "kwargs, param, needle",
    [
        ({"model": "demo/nova-lite", "input": "x"}, "model", "is a chat model and cannot be used with /v1/embeddings"),
        ({"model": "demo/titan-embed-v2", "input": [[1, 2, 3]]}, "input", "Token ids"),
        ({"model": "demo/titan-embed-v2", "input": "x", "dimensions": 300}, "dimensions", "256, 512 or 1024"),
        ({"model": "demo/cohere-embed", "input": "x", "dimensions": 256}, "dimensions", "1024 dimensions only"),
    ],
)
def test_embedding_errors(client, sim, kwargs, param, needle):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(**kwargs)
    err = error_body(e.value)
    assert err["param"] == param and needle in err["message"], err
    assert sim.requests() == []


def test_bedrock_throttling_is_a_429(client):
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="demo/cohere-embed", input=["fine", "[[sim:error=ThrottlingException]]"])


# ---------------------------------------------------------------------- images
def test_nova_canvas_generate(client, sim):
    r = client.images.generate(model="demo/nova-canvas", prompt="a lighthouse", size="1024x1024", n=2, quality="hd")
    assert len(r.data) == 2
    assert all(png_size(d.b64_json) == (1024, 1024) for d in r.data)
    assert r.data[0].b64_json != r.data[1].b64_json
    (call,) = invoke_calls(sim, "demo/nova-canvas")
    assert body_of(call) == {
        "taskType": "TEXT_IMAGE",
        "textToImageParams": {"text": "a lighthouse"},
        "imageGenerationConfig": {"numberOfImages": 2, "width": 1024, "height": 1024, "quality": "premium"},
    }


def test_canvas_style_and_negative_prompt_through_extra_fields(client, sim):
    r = client.images.generate(
        model="demo/nova-canvas",
        prompt="a fox",
        size="1280x720",
        extra_body={"style": "FLAT_VECTOR_ILLUSTRATION", "negative_prompt": "text", "seed": 42},
    )
    assert png_size(r.data[0].b64_json) == (1280, 720)
    sent = body_of(invoke_calls(sim, "demo/nova-canvas")[0])
    assert sent["textToImageParams"] == {"text": "a fox", "negativeText": "text", "style": "FLAT_VECTOR_ILLUSTRATION"}
    assert sent["imageGenerationConfig"]["seed"] == 42


def test_stability_generate_fans_out(client, sim):
    r = client.images.generate(model="demo/sd35", prompt="a fox", n=2, size="1024x1536", extra_body={"seed": 9})
    assert [png_size(d.b64_json) for d in r.data] == [(832, 1216), (832, 1216)]
    sent = sorted((body_of(c)["seed"], body_of(c)["aspect_ratio"]) for c in invoke_calls(sim, "demo/sd35"))
    assert sent == [(9, "2:3"), (10, "2:3")]


def _png(width: int, height: int, grey: int) -> bytes:
    rows = b"".join(b"\x00" + bytes([grey]) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_edit_with_mask_is_inpainting(client, sim):
    image, mask = _png(64, 48, 200), _png(64, 48, 0)
    r = client.images.edit(
        model="demo/nova-canvas",
        image=("photo.png", image, "image/png"),
        mask=("mask.png", mask, "image/png"),
        prompt="add a hat",
    )
    assert png_size(r.data[0].b64_json) == (64, 48)
    sent = body_of(invoke_calls(sim, "demo/nova-canvas")[0])
    assert sent["taskType"] == "INPAINTING"
    params = sent["inPaintingParams"]
    assert base64.b64decode(params["image"]) == image and base64.b64decode(params["maskImage"]) == mask
    assert params["text"] == "add a hat"


def test_edit_without_mask_is_a_variation(client, sim):
    r = client.images.edit(model="demo/nova-canvas", image=io.BytesIO(_png(320, 320, 9)), prompt="in winter", n=2)
    assert [png_size(d.b64_json) for d in r.data] == [(320, 320), (320, 320)]
    sent = body_of(invoke_calls(sim, "demo/nova-canvas")[0])
    assert sent["taskType"] == "IMAGE_VARIATION"
    assert sent["imageVariationParams"]["text"] == "in winter"


def test_edit_with_mask_prompt(client, sim):
    client.images.edit(
        model="demo/nova-canvas",
        image=("p.png", _png(32, 32, 1), "image/png"),
        prompt="a red hat",
        extra_body={"mask_prompt": "the hat"},
    )
    params = body_of(invoke_calls(sim, "demo/nova-canvas")[0])["inPaintingParams"]
    assert params["maskPrompt"] == "the hat" and "maskImage" not in params


def test_stability_image_to_image(client, sim):
    r = client.images.edit(
        model="demo/sd35", image=("p.png", _png(40, 30, 5), "image/png"), prompt="oil painting", extra_body={"strength": "0.4"}
    )
    assert png_size(r.data[0].b64_json) == (40, 30)
    sent = body_of(invoke_calls(sim, "demo/sd35")[0])
    assert (sent["mode"], sent["strength"]) == ("image-to-image", 0.4)


def test_filtered_prompts_are_content_policy_violations(client):
    for model in ("demo/nova-canvas", "demo/sd35"):
        with pytest.raises(openai.BadRequestError) as e:
            client.images.generate(model=model, prompt="something [[sim:filter]]")
        assert error_body(e.value)["code"] == "content_policy_violation", model


@pytest.mark.parametrize(
    "kwargs, param",
    [
        ({"model": "demo/nova-canvas", "prompt": "x", "size": "256x256"}, "size"),
        ({"model": "demo/nova-canvas", "prompt": "x", "response_format": "url"}, "response_format"),
        ({"model": "demo/titan-embed-v2", "prompt": "x"}, "model"),
        ({"model": "demo/nova-canvas", "prompt": "x", "n": 6}, "n"),
    ],
)
def test_image_errors(client, sim, kwargs, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(**kwargs)
    assert error_body(e.value)["param"] == param
    assert sim.requests() == []


def test_oversized_upload_is_a_413(client, sim):
    with pytest.raises(openai.APIStatusError) as e:
        client.images.edit(model="demo/nova-canvas", image=("big.png", b"\x89PNG" + b"\0" * (10 * 1024 * 1024), "image/png"), prompt="x")
    assert e.value.status_code == 413
    err = error_body(e.value)
    assert (err["code"], err["param"]) == ("request_too_large", "image")
    assert sim.requests() == []
