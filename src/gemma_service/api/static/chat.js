// The chat page of gemma-service: streams answers from POST /chat/stream and keeps the
// conversation in this page. Everything from the service is shown with textContent, never as
// HTML, so a model answer or a stored memory cannot inject markup.
"use strict";

(() => {
  const KEY_STORAGE = "gemma-service.api-key";
  const $ = (id) => document.getElementById(id);

  /** The conversation sent with every request: [{role, content, images?}], oldest first. */
  let conversation = [];
  /** The image the next question carries: {dataUrl, base64}, or null. */
  let pendingImage = null;
  /** Aborts the answer being streamed (the Stop button). */
  let controller = null;

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function addTurn(role, text, imageUrl) {
    const turn = element("article", `turn ${role}`);
    turn.dataset.role = role;
    if (imageUrl) {
      const img = element("img", "attached");
      img.alt = "attached image";
      img.src = imageUrl; // a data: URL the user picked here, never markup
      turn.append(img);
    }
    turn.append(element("div", "text", text));
    $("conversation").append(turn);
    turn.scrollIntoView({ block: "end" });
    return turn;
  }

  /** "2025-02-01T10:00:00+00:00" as "2025-02-01 10:00" (the time as stored, no zone math). */
  function shortTime(timestamp) {
    return typeof timestamp === "string" ? timestamp.replace("T", " ").slice(0, 16) : "";
  }

  function renderSources(turn, sources) {
    if (!Array.isArray(sources) || sources.length === 0) return;
    const details = element("details", "sources");
    details.open = true;
    details.append(element("summary", "", `Sources (${sources.length})`));
    const list = element("ol");
    sources.forEach((source, i) => {
      const item = element("li", "source");
      item.value = Number.isInteger(source.n) ? source.n : i + 1;
      const meta = [source.speaker, shortTime(source.timestamp)].filter(Boolean).join(" · ");
      if (meta) item.append(element("span", "meta", meta));
      item.append(element("span", "source-text", String(source.text ?? "")));
      list.append(item);
    });
    details.append(list);
    turn.append(details);
  }

  /** "24 tokens · 31.5 tokens/s · gemma-3-1b" under an answer: its decode speed, first token
   * to last (the wait for the first token is the model's load and the prompt, not decoding). */
  function renderStats(turn, usage, firstTokenAt) {
    const tokens = usage?.completion_tokens;
    if (!Number.isInteger(tokens) || tokens === 0) return;
    const parts = [`${tokens} tokens`];
    const seconds = firstTokenAt === null ? 0 : (performance.now() - firstTokenAt) / 1000;
    if (tokens > 1 && seconds > 0) parts.push(`${((tokens - 1) / seconds).toFixed(1)} tokens/s`);
    if ($("model").value) parts.push($("model").value);
    turn.append(element("p", "note stats", parts.join(" · ")));
  }

  /** Fills the model picker from /v1/models: every model with its state, the choice kept. */
  async function loadModels() {
    try {
      const response = await fetch("v1/models", { headers: authHeaders() });
      if (!response.ok) return;
      const { data } = await response.json();
      const picker = $("model");
      const chosen = picker.value;
      picker.replaceChildren(
        ...data.map((model) => {
          const option = element("option", "", `${model.id} (${model.state})`);
          option.value = model.id;
          return option;
        }),
      );
      if (data.some((model) => model.id === chosen)) picker.value = chosen;
    } catch {
      // unreachable: the header line says so
    }
  }

  function authHeaders() {
    const key = $("api-key").value.trim();
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  function requestBody() {
    const body = { messages: conversation, use_rag: $("use-memory").checked };
    const model = $("model").value;
    if (model) body.model = model;
    const maxTokens = parseInt($("max-tokens").value, 10);
    if (Number.isInteger(maxTokens) && maxTokens > 0) body.max_tokens = maxTokens;
    return body;
  }

  /** Yields the JSON object of each `data:` line of a server-sent event stream. */
  async function* sseEvents(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of block.split("\n")) {
          const data = line.startsWith("data:") ? line.slice(5).trim() : "";
          if (data && data !== "[DONE]") yield JSON.parse(data);
        }
      }
    }
  }

  async function errorMessage(response) {
    let message = response.statusText || "request failed";
    try {
      const body = await response.json();
      message = body?.error?.message || body?.detail || message;
    } catch {
      // not JSON: keep the status text
    }
    if (response.status === 401 || response.status === 403) {
      message += " (enter a valid API key above)";
    }
    return `${response.status}: ${message}`;
  }

  async function streamAnswer(turn) {
    const textEl = turn.querySelector(".text");
    const response = await fetch("chat/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify(requestBody()),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    let answer = "";
    let firstTokenAt = null;
    for await (const event of sseEvents(response)) {
      if (event.error) throw Object.assign(new Error(event.error.message), { answer });
      if (event.token) {
        firstTokenAt ??= performance.now();
        answer += event.token;
        textEl.textContent = answer;
      }
      if (event.done) {
        renderStats(turn, event.usage, firstTokenAt);
        renderSources(turn, event.sources);
        break;
      }
    }
    return answer;
  }

  async function send(text) {
    const image = pendingImage;
    clearImage();
    const userTurn = addTurn("user", text, image?.dataUrl);
    conversation.push(image ? { role: "user", content: text, images: [image.base64] }
                            : { role: "user", content: text });
    const turn = addTurn("assistant", "");
    turn.classList.add("streaming");
    controller = new AbortController();
    setBusy(true);
    try {
      const answer = await streamAnswer(turn);
      conversation.push({ role: "assistant", content: answer });
    } catch (err) {
      if (err.name === "AbortError") {
        const partial = turn.querySelector(".text").textContent;
        conversation.push({ role: "assistant", content: partial });
        turn.append(element("p", "note", "Stopped."));
      } else {
        // The question got no answer: leave it out of what the next request sends.
        conversation.pop();
        userTurn.classList.add("failed");
        turn.classList.add("failed");
        turn.append(element("p", "error", `Error: ${err.message}`));
      }
    } finally {
      turn.classList.remove("streaming");
      controller = null;
      setBusy(false);
      loadModels(); // the answer may have loaded a model (or another one was unloaded)
    }
  }

  /** Reads an image file into the pending image and shows it above the box. */
  function takeImage(file) {
    if (!file || !file.type.startsWith("image/")) return;
    const reader = new FileReader();
    reader.onload = () => {
      const dataUrl = String(reader.result);
      pendingImage = { dataUrl, base64: dataUrl.slice(dataUrl.indexOf(",") + 1) };
      $("pending-preview").src = dataUrl;
      $("pending-image").hidden = false;
    };
    reader.readAsDataURL(file);
  }

  function clearImage() {
    pendingImage = null;
    $("pending-image").hidden = true;
    $("pending-preview").removeAttribute("src");
    $("image-input").value = "";
  }

  function setBusy(busy) {
    $("send").disabled = busy;
    $("stop").hidden = !busy;
    $("status").textContent = busy ? "Answering…" : "";
  }

  async function showServiceInfo() {
    try {
      const response = await fetch("healthz", { headers: authHeaders() });
      const body = await response.json();
      const parts = [body.model, body.device, body.status !== "ok" ? body.status : ""];
      $("service-info").textContent = parts.filter(Boolean).join(" · ");
    } catch {
      $("service-info").textContent = "service unreachable";
    }
  }

  function start() {
    const keyInput = $("api-key");
    keyInput.value = sessionStorage.getItem(KEY_STORAGE) || "";
    keyInput.addEventListener("change", () => {
      sessionStorage.setItem(KEY_STORAGE, keyInput.value.trim());
      loadModels();
    });
    $("model").addEventListener("focus", loadModels);
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("prompt").value.trim();
      if (!text || controller) return;
      $("prompt").value = "";
      send(text);
    });
    $("prompt").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        $("composer").requestSubmit();
      }
    });
    $("image-input").addEventListener("change", (event) => takeImage(event.target.files[0]));
    $("prompt").addEventListener("paste", (event) => {
      const item = [...(event.clipboardData?.items || [])].find((i) => i.type.startsWith("image/"));
      if (item) {
        event.preventDefault();
        takeImage(item.getAsFile());
      }
    });
    $("remove-image").addEventListener("click", clearImage);
    $("stop").addEventListener("click", () => controller?.abort());
    $("new-chat").addEventListener("click", () => {
      controller?.abort();
      conversation = [];
      clearImage();
      $("conversation").replaceChildren();
    });
    showServiceInfo();
    loadModels();
  }

  start();
})();
