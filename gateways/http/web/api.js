// The /v1 API as the page uses it: JSON calls, and a turn's Server-Sent Events read over fetch
// (EventSource can neither POST nor send the Authorization header).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch {
    // Not JSON (a proxy's error page): keep the status line.
  }
  return new ApiError(response.status, code, message);
}

async function request(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "unreachable", "Cannot reach the service. Is it running?");
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

export class Api {
  constructor(userId, token) {
    this.userId = userId;
    this.token = token;
  }

  chatsUrl(path = "") {
    return `/v1/users/${encodeURIComponent(this.userId)}/chats${path}`;
  }

  headers(extra = {}) {
    return this.token ? { ...extra, Authorization: this.token } : extra;
  }

  async json(method, path, body, signal) {
    const init = { method, headers: this.headers(), signal };
    if (body !== undefined) {
      init.headers = this.headers({ "Content-Type": "application/json" });
      init.body = JSON.stringify(body);
    }
    const response = await request(this.chatsUrl(path), init);
    return response.status === 204 ? null : response.json();
  }

  // `text`: a search over titles and contents (hits may carry a "snippet").
  listChats(pageToken = "", text = "", signal = undefined) {
    const q = new URLSearchParams({ page_size: "50" });
    if (pageToken) q.set("page_token", pageToken);
    if (text) q.set("q", text);
    return this.json("GET", `?${q}`, undefined, signal);
  }

  rename(chatId, title) {
    return this.json("PATCH", `/${encodeURIComponent(chatId)}`, { title });
  }

  // The active path now runs through `messageId`; answers the chat.
  setLeaf(chatId, messageId) {
    return this.json("PUT", `/${encodeURIComponent(chatId)}/leaf`, { message_id: messageId });
  }

  createChat(settings, signal) {
    return this.json("POST", "", settings, signal);
  }

  getChat(chatId) {
    return this.json("GET", `/${encodeURIComponent(chatId)}`);
  }

  deleteChat(chatId) {
    return this.json("DELETE", `/${encodeURIComponent(chatId)}`);
  }

  // Every message of the chat's active path in order, the ones evicted from the window included.
  async messages(chatId) {
    const all = [];
    let token = "";
    do {
      const q = new URLSearchParams({ include_erased: "true", page_size: "1000" });
      if (token) q.set("page_token", token);
      const page = await this.json("GET", `/${encodeURIComponent(chatId)}/messages?${q}`);
      all.push(...page.messages);
      token = page.next_page_token;
    } while (token);
    return all;
  }

  // One turn: yields {event, data} for start, delta..., then end or error. Aborting `signal`
  // closes the connection, which stops the LLM on the server and keeps the partial answer.
  send(chatId, content, signal) {
    return this.stream(`/${encodeURIComponent(chatId)}/messages`, { content }, signal);
  }

  // A new answer beside answer `messageId`, streamed like a turn.
  regenerate(chatId, messageId, signal) {
    return this.stream(`/${encodeURIComponent(chatId)}/messages/${messageId}/regenerate`, {}, signal);
  }

  // A new user message beside user message `messageId`, then its turn.
  edit(chatId, messageId, content, signal) {
    return this.stream(`/${encodeURIComponent(chatId)}/messages/${messageId}/edit`, { content }, signal);
  }

  async *stream(path, body, signal) {
    const response = await request(this.chatsUrl(path), {
      method: "POST",
      headers: this.headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify(body),
      signal,
    });
    yield* readEvents(response.body);
  }
}

export async function* readEvents(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = parseEvent(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        if (event) yield event;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: JSON.parse(data.join("\n")) } : null;
}
