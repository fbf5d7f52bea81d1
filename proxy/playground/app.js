// The playground: a single page that calls only this gateway's own /v1 API.
// No framework and no inline script, so the page runs under a strict
// Content-Security-Policy (script-src 'self'; connect-src 'self').
"use strict";

const KEY_STORAGE = "bedrock-gateway.apiKey";
const COST_HEADER = "x-bedrock-gateway-cost-usd";
const PREVIEW_VALUES = 8;

const $ = (id) => document.getElementById(id);

const state = {
  models: [],          // entries of GET /v1/models
  history: [],         // chat turns sent so far: {role, content}
  controller: null,    // AbortController of the request in flight
  codeLang: "python",
};

// ---------------------------------------------------------------- API calls

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function request(path, body, signal) {
  const init = { method: body ? "POST" : "GET", headers: { Authorization: `Bearer ${apiKey()}` }, signal };
  if (body) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(path, init);
}

// The gateway's OpenAI error message, exactly as it sent it.
async function errorMessage(response) {
  const text = await response.text();
  try {
    const doc = JSON.parse(text);
    if (doc && doc.error && doc.error.message) return doc.error.message;
  } catch (_) {
    // not JSON: fall through to the raw text
  }
  return text || `HTTP ${response.status}`;
}

// ---------------------------------------------------------------- status line

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

function showNotice(message) {
  const el = $("notice");
  el.textContent = message;
  el.hidden = !message;
}

function formatMs(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function showStats(parts) {
  $("stats").textContent = parts.filter(Boolean).join(" · ");
}

function costPart(cost) {
  return cost ? `cost $${cost}` : "cost n/a";
}

// A USD amount the way the gateway writes its cost header: plain decimals, no trailing zeros.
function costText(usd) {
  const text = usd.toFixed(10).replace(/0+$/, "").replace(/\.$/, "");
  return text === "" || text === "-" ? "0" : text;
}

// The cost of a streamed chat from its usage chunk and the model's prices in /v1/models, priced
// like the gateway does (its cost trailer is out of a browser's reach). `null` when unpriced.
function streamCost(model, usage) {
  const base = model && model.pricing;
  if (!base || !usage) return null;
  const details = usage.prompt_tokens_details || {};
  const cacheRead = details.cached_tokens || 0;
  const cacheWrite = details.cache_write_tokens || 0;
  const input = Math.max(usage.prompt_tokens - cacheRead - cacheWrite, 0);
  // Past the long-context threshold every token of the request is billed at those prices.
  const long = base.long_context;
  const p = long && input + cacheRead + cacheWrite > long.above_input_tokens ? long : base;
  // Same terms in the same order as the gateway, so the sums agree to the last digit.
  const perMillion = (n, price) => (n * price) / 1e6;
  const usd =
    perMillion(input, p.input_per_million_tokens) +
    perMillion(usage.completion_tokens, p.output_per_million_tokens) +
    perMillion(cacheRead, p.cache_read_per_million_tokens) +
    perMillion(cacheWrite, p.cache_write_per_million_tokens);
  return costText(usd);
}

// ---------------------------------------------------------------- models

function selectedModel() {
  return state.models.find((m) => m.id === $("model").value) || null;
}

function modelKind(model) {
  return (model && model.kind) || "chat";
}

async function loadModels() {
  const select = $("model");
  select.replaceChildren();
  select.disabled = true;
  state.models = [];
  showError("");
  if (!apiKey()) {
    select.append(new Option("enter a key first", ""));
    showPanel();
    return;
  }
  let response;
  try {
    response = await request("/v1/models");
  } catch (e) {
    showError(`The gateway could not be reached: ${e.message}`);
    return;
  }
  if (!response.ok) {
    select.append(new Option("no models", ""));
    showPanel();
    showError(await errorMessage(response));
    return;
  }
  const list = await response.json();
  state.models = list.data;
  if (state.models.length === 0) {
    select.append(new Option("no models", ""));
    showNotice("This key may not use any model: ask the gateway's operators for an AccessPolicy.");
    showPanel();
    return;
  }
  showNotice("");
  // One group per Bedrock account: served names are "<account>/<model>".
  const groups = new Map();
  for (const m of state.models) {
    const account = m.owned_by || m.id.split("/")[0];
    if (!groups.has(account)) {
      const group = document.createElement("optgroup");
      group.label = account;
      groups.set(account, group);
      select.append(group);
    }
    groups.get(account).append(new Option(`${m.id} (${modelKind(m)})`, m.id));
  }
  select.disabled = false;
  showPanel();
}

function showPanel() {
  const model = selectedModel();
  const kind = model ? modelKind(model) : "";
  $("model-kind").textContent = kind;
  $("chat-panel").hidden = kind !== "chat";
  // Offer only what the model's family accepts (the gateway would refuse the rest with a 400).
  const caps = (model && model.capabilities) || {};
  $("reasoning-row").hidden = !caps.reasoning;
  $("reasoning").value = caps.reasoning ? $("reasoning").value : "";
  const accepts = [caps.images && "image/png,image/jpeg,image/gif,image/webp", caps.documents && "application/pdf"];
  $("attachments").accept = accepts.filter(Boolean).join(",");
  $("attachments-row").hidden = !caps.images && !caps.documents;
  $("attachments-label").textContent = caps.images && caps.documents ? "Attach image or PDF" : caps.images ? "Attach image" : "Attach PDF";
  $("embedding-panel").hidden = kind !== "embedding";
  $("image-panel").hidden = kind !== "image";
  showStats([]);
  showError("");
  renderCode();
}

// ---------------------------------------------------------------- chat

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// The user turn as OpenAI content: a string, or parts when files are attached.
async function userContent(text, files) {
  if (files.length === 0) return text;
  const parts = [{ type: "text", text }];
  for (const file of files) {
    const url = await readAsDataUrl(file);
    if (file.type === "application/pdf") {
      parts.push({ type: "file", file: { filename: file.name, file_data: url } });
    } else {
      parts.push({ type: "image_url", image_url: { url } });
    }
  }
  return parts;
}

function chatBody(messages, stream) {
  const body = { model: $("model").value, messages };
  body.temperature = Number($("temperature").value);
  const maxTokens = Number($("max-tokens").value);
  if (maxTokens > 0) body.max_completion_tokens = maxTokens;
  if ($("reasoning").value) body.reasoning_effort = $("reasoning").value;
  if (stream) {
    body.stream = true;
    body.stream_options = { include_usage: true };
  }
  return body;
}

function conversation(userTurn) {
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  messages.push(...state.history);
  if (userTurn) messages.push(userTurn);
  return messages;
}

function addTurn(role, text, note) {
  const item = document.createElement("li");
  item.className = role;
  const who = document.createElement("span");
  who.className = "role";
  who.textContent = role;
  const reasoning = document.createElement("details");
  reasoning.className = "reasoning";
  reasoning.hidden = true;
  const reasoningTitle = document.createElement("summary");
  reasoningTitle.textContent = "reasoning";
  const reasoningText = document.createElement("div");
  reasoning.append(reasoningTitle, reasoningText);
  const body = document.createElement("div");
  body.className = "content";
  body.textContent = text;
  item.append(who, reasoning, body);
  if (note) {
    const extra = document.createElement("span");
    extra.className = "note";
    extra.textContent = note;
    item.append(extra);
  }
  $("transcript").append(item);
  return { body, reasoning, reasoningText };
}

// Yields the JSON payload of each SSE `data:` event until `[DONE]`.
async function* sseEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

async function sendChat(event) {
  event.preventDefault();
  const text = $("prompt").value.trim();
  const files = Array.from($("attachments").files);
  if (!text || !$("model").value) return;
  showError("");
  const content = await userContent(text, files);
  const userTurn = { role: "user", content };
  addTurn("user", text, files.length ? `attached: ${files.map((f) => f.name).join(", ")}` : "");
  const answer = addTurn("assistant", "");
  answer.body.classList.add("pending");
  setBusy(true);

  const started = performance.now();
  let firstToken = null;
  let usage = null;
  let reply = "";
  const model = selectedModel();
  state.controller = new AbortController();
  try {
    const response = await request("/v1/chat/completions", chatBody(conversation(userTurn), true), state.controller.signal);
    if (!response.ok) throw new Error(await errorMessage(response));
    for await (const chunk of sseEvents(response)) {
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices || []) {
        const delta = choice.delta || {};
        if (delta.reasoning_content) {
          answer.reasoning.hidden = false;
          answer.reasoningText.textContent += delta.reasoning_content;
        }
        if (delta.content) {
          if (firstToken === null) firstToken = performance.now() - started;
          reply += delta.content;
          answer.body.textContent = reply;
        }
      }
    }
    state.history.push(userTurn, { role: "assistant", content: reply });
    $("prompt").value = "";
    $("attachments").value = "";
    const total = performance.now() - started;
    showStats([
      usage ? `tokens ${usage.prompt_tokens} in / ${usage.completion_tokens} out` : "tokens n/a",
      firstToken === null ? "" : `first token ${formatMs(firstToken)}`,
      `total ${formatMs(total)}`,
      costPart(streamCost(model, usage)),
    ]);
  } catch (e) {
    answer.body.parentElement.remove();
    if (e.name !== "AbortError") showError(e.message);
  } finally {
    answer.body.classList.remove("pending");
    state.controller = null;
    setBusy(false);
    renderCode();
  }
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
}

// ---------------------------------------------------------------- embeddings

async function sendEmbedding(event) {
  event.preventDefault();
  const input = $("embedding-input").value;
  if (!input.trim()) return;
  showError("");
  const out = $("embedding-result");
  out.replaceChildren();
  const started = performance.now();
  const response = await request("/v1/embeddings", { model: $("model").value, input });
  if (!response.ok) {
    showError(await errorMessage(response));
    return;
  }
  const doc = await response.json();
  const vector = doc.data[0].embedding;
  const size = document.createElement("p");
  size.className = "vector-size";
  size.textContent = `${vector.length} dimensions`;
  const values = document.createElement("pre");
  values.className = "vector-values";
  values.textContent = `[${vector.slice(0, PREVIEW_VALUES).map((v) => v.toFixed(6)).join(", ")}${vector.length > PREVIEW_VALUES ? ", ..." : ""}]`;
  out.append(size, values);
  showStats([
    `tokens ${doc.usage.prompt_tokens} in`,
    `total ${formatMs(performance.now() - started)}`,
    costPart(response.headers.get(COST_HEADER)),
  ]);
}

// ---------------------------------------------------------------- images

function imageBody() {
  return {
    model: $("model").value,
    prompt: $("image-prompt").value,
    size: $("image-size").value,
    n: Number($("image-n").value) || 1,
    response_format: "b64_json",
  };
}

async function sendImage(event) {
  event.preventDefault();
  if (!$("image-prompt").value.trim()) return;
  showError("");
  const out = $("image-result");
  out.replaceChildren();
  $("generate").disabled = true;
  const started = performance.now();
  try {
    const response = await request("/v1/images/generations", imageBody());
    if (!response.ok) {
      showError(await errorMessage(response));
      return;
    }
    const doc = await response.json();
    for (const [i, image] of doc.data.entries()) {
      const img = document.createElement("img");
      img.alt = `generated image ${i + 1}`;
      img.src = `data:image/png;base64,${image.b64_json}`;
      out.append(img);
    }
    showStats([
      `${doc.data.length} image${doc.data.length === 1 ? "" : "s"}`,
      `total ${formatMs(performance.now() - started)}`,
      costPart(response.headers.get(COST_HEADER)),
    ]);
  } finally {
    $("generate").disabled = false;
  }
}

// ---------------------------------------------------------------- show code

// Long data URLs are shortened so the snippet stays readable.
function shortenDataUrls(value) {
  return JSON.parse(
    JSON.stringify(value, (_, v) =>
      typeof v === "string" && v.startsWith("data:") && v.length > 80 ? `${v.slice(0, 60)}...` : v,
    ),
  );
}

// A JSON value as a Python literal.
function python(value, indent = "") {
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number" || typeof value === "string") return JSON.stringify(value);
  const inner = indent + "    ";
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return `[\n${value.map((v) => inner + python(v, inner)).join(",\n")},\n${indent}]`;
  }
  const entries = Object.entries(value);
  if (entries.length === 0) return "{}";
  return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${python(v, inner)}`).join(",\n")},\n${indent}}`;
}

function shellQuote(text) {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

// What the page would send now: [path, body, SDK method].
function currentCall() {
  const kind = modelKind(selectedModel());
  if (kind === "embedding") {
    return ["/v1/embeddings", { model: $("model").value, input: $("embedding-input").value }, "embeddings.create"];
  }
  if (kind === "image") return ["/v1/images/generations", imageBody(), "images.generate"];
  const draft = $("prompt").value.trim();
  const turn = draft ? { role: "user", content: draft } : null;
  return ["/v1/chat/completions", chatBody(conversation(turn), true), "chat.completions.create"];
}

function renderCode() {
  const base = `${window.location.origin}/v1`;
  const [path, rawBody, method] = currentCall();
  const body = shortenDataUrls(rawBody);
  let text;
  if (state.codeLang === "python") {
    const args = Object.entries(body)
      .map(([k, v]) => `    ${k}=${python(v, "    ")},`)
      .join("\n");
    const lines = [
      "import os",
      "",
      "from openai import OpenAI",
      "",
      `client = OpenAI(base_url=${JSON.stringify(base)}, api_key=os.environ["BEDROCK_GATEWAY_API_KEY"])`,
      `response = client.${method}(`,
      args,
      ")",
    ];
    if (body.stream) {
      lines.push(
        "for chunk in response:",
        "    if chunk.choices and chunk.choices[0].delta.content:",
        '        print(chunk.choices[0].delta.content, end="", flush=True)',
        "    if chunk.usage:",
        "        print()",
        "        print(chunk.usage)",
      );
    } else {
      lines.push("print(response)");
    }
    text = lines.join("\n");
  } else {
    text = [
      `curl ${body.stream ? "-N " : ""}${window.location.origin}${path} \\`,
      '  -H "Authorization: Bearer $BEDROCK_GATEWAY_API_KEY" \\',
      '  -H "Content-Type: application/json" \\',
      `  -d ${shellQuote(JSON.stringify(body, null, 2))}`,
    ].join("\n");
  }
  $("code-text").textContent = text;
}

function chooseCodeLang(lang) {
  state.codeLang = lang;
  $("code-python").setAttribute("aria-pressed", String(lang === "python"));
  $("code-curl").setAttribute("aria-pressed", String(lang === "curl"));
  renderCode();
}

// ---------------------------------------------------------------- wiring

// A failed fetch (gateway gone, connection reset) shows as an error, never silently.
function guarded(handler) {
  return (event) => handler(event).catch((e) => showError(e.message));
}

function init() {
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
    loadModels();
  });
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    $("api-key").value = "";
    loadModels();
  });
  $("model").addEventListener("change", () => {
    state.history = [];
    $("transcript").replaceChildren();
    showPanel();
  });
  $("temperature").addEventListener("input", () => {
    $("temperature-value").textContent = Number($("temperature").value).toFixed(1);
  });
  $("chat-form").addEventListener("submit", sendChat);
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("chat-form").requestSubmit();
  });
  $("stop").addEventListener("click", () => state.controller && state.controller.abort());
  $("clear").addEventListener("click", () => {
    state.history = [];
    $("transcript").replaceChildren();
    showStats([]);
    renderCode();
  });
  $("embedding-form").addEventListener("submit", guarded(sendEmbedding));
  $("image-form").addEventListener("submit", guarded(sendImage));
  for (const id of ["system", "temperature", "max-tokens", "reasoning", "prompt", "embedding-input", "image-prompt", "image-size", "image-n"]) {
    $(id).addEventListener("input", renderCode);
  }
  $("code-python").addEventListener("click", () => chooseCodeLang("python"));
  $("code-curl").addEventListener("click", () => chooseCodeLang("curl"));
  loadModels();
}

document.addEventListener("DOMContentLoaded", init);
