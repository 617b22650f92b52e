// A turn from the page: create the chat on its first message, stream the answer, Stop; a
// regenerate or an edit runs the same way (`turn.kind`).

import { chatHash, paintAnswer, renderMeter } from "./view.js";
import {
  $, banner, failed, nearEnd, openId, render, renderSidebar, runningHere, scrollToEnd, state,
} from "./state.js";

const STORED_POLLS = 40; // × 250 ms: how long a stopped answer may take to be stored

// The open chat's messages and window as stored; until `settled(messages)` holds, if given.
export async function refresh(chatId, settled = () => true) {
  for (let attempt = 0; ; attempt += 1) {
    const [chat, messages] = await Promise.all([state.api.getChat(chatId), state.api.messages(chatId)]);
    const listed = state.chats.find((c) => c.chat_id === chatId);
    if (listed) listed.title = chat.title;
    if (chatId === openId()) {
      state.chat = chat;
      state.messages = messages;
    }
    if (settled(messages) || attempt >= STORED_POLLS) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function settings() {
  const body = {};
  const system = $("set-system").value.trim();
  const model = $("set-model").value.trim();
  const temperature = $("set-temperature").value.trim();
  if (system) body.system_prompt = system;
  if (model) body.model = model;
  if (!$("set-temperature").validity.valid) throw new Error("Temperature must be a number from 0 to 2.");
  if (temperature) body.temperature = Number(temperature);
  return body;
}

// Enter: the message leaves the input and shows at once; a new chat is created by it first.
export async function send() {
  const input = $("input");
  const content = input.value;
  if (!content.trim() || runningHere() || input.disabled) return;
  banner("");
  input.value = "";
  resizeInput();
  const first = state.messages.every((m) => m.role === "system");
  const turn = startTurn(openId(), content, { first });
  if (turn.chatId === null && !(await createChat(turn))) return;
  await runTurn(turn);
}

// `options`: {kind: "send" | "regenerate" | "edit", target: the message regenerated or edited,
// first: the chat's first exchange}. The path shown ends before the target until the turn ends.
export function startTurn(chatId, content, options = {}) {
  const api = state.api;
  const { kind = "send", target = null, first = false } = options;
  const newest = Math.max(0, ...state.messages.map((m) => m.message_id));
  const turn = {
    ...{ api, chatId, content, kind, target, first, newest },
    ...{ text: "", controller: new AbortController(), stopped: false, started: null },
  };
  if (target !== null) {
    const at = state.messages.findIndex((m) => m.message_id === target);
    if (at >= 0) state.messages = state.messages.slice(0, at);
  }
  state.editing = null;
  state.turns.set(chatId, turn);
  const hadFocus = document.activeElement === $("input");
  render();
  scrollToEnd(true);
  if (hadFocus) $("stop").focus();
  return turn;
}

// The chat a first message makes (with the new chat's settings); false if it could not be made,
// and then the message, never sent, is back in the input.
async function createChat(turn) {
  const opening = state.opening;
  const stillHere = () => state.chat === null && opening === state.opening && turn.api === state.api;
  let chat;
  try {
    chat = await state.api.createChat(settings(), turn.controller.signal);
  } catch (err) {
    state.turns.delete(null);
    if (stillHere()) $("input").value = turn.content;
    render();
    if (err.name !== "AbortError") failed(err);
    return false;
  }
  state.turns.delete(null);
  turn.chatId = chat.chat_id;
  state.turns.set(chat.chat_id, turn);
  state.chats.unshift(chat);
  if (stillHere()) {
    state.chat = chat;
    history.pushState(null, "", chatHash(chat.chat_id));
    $("settings").reset();
  }
  render();
  return true;
}

function setWindow(chatId, window) {
  if (chatId === openId()) state.chat.window = window;
  renderMeter($("meter"), state.chat?.window, state.chat?.params.max_tokens ?? 0);
}

function events(turn) {
  const { api, chatId, content, kind, target } = turn;
  const signal = turn.controller.signal;
  if (kind === "regenerate") return api.regenerate(chatId, target, signal);
  if (kind === "edit") return api.edit(chatId, target, content, signal);
  return api.send(chatId, content, signal);
}

export async function runTurn(turn) {
  const { chatId, content } = turn;
  let painting = 0;
  try {
    for await (const { event, data } of events(turn)) {
      if (event === "start") {
        turn.started = data;
        setWindow(chatId, data.window);
      } else if (event === "delta") {
        turn.text += data.text;
        painting ||= requestAnimationFrame(() => {
          painting = 0;
          const item = chatId === openId() && document.querySelector(".msg.streaming");
          if (item) paintAnswer(item, turn.text);
          scrollToEnd();
        });
      } else if (event === "end") {
        setWindow(chatId, data.window);
      } else if (event === "error") {
        banner(`The answer failed: ${data.error.message}`);
      }
    }
  } catch (err) {
    if (err.name !== "AbortError") {
      const unsent = !turn.started && chatId === openId();
      if (unsent && turn.kind === "send" && !$("input").value) $("input").value = content;
      if (unsent && turn.kind === "edit") state.editing = { messageId: turn.target, draft: content };
      failed(err);
    }
  } finally {
    cancelAnimationFrame(painting);
    state.turns.delete(chatId);
  }
  await finishTurn(turn);
}

// Show the turn as it ended at once, then as stored (a stopped answer is stored a moment later).
async function finishTurn(turn) {
  const { chatId, started } = turn;
  if (turn.api !== state.api) return; // signed out meanwhile
  if (started && chatId === openId()) {
    const user = { message_id: started.user_message_id, role: "user", content: turn.content, erased: false };
    if (turn.kind !== "regenerate") state.messages.push(user);
    if (turn.text) {
      const status = turn.stopped ? "interrupted" : "complete";
      state.messages.push({ message_id: -1, role: "assistant", content: turn.text, status, erased: false });
    }
  }
  renderKeepingEnd();
  if (chatId === openId() && [document.body, $("stop")].includes(document.activeElement)) $("input").focus();
  // Ids grow over the whole tree: the new answer's is above every id shown before the turn.
  const newer = Math.max(turn.newest, started?.user_message_id ?? 0);
  const stored = (messages) =>
    !started || !turn.text || messages.some((m) => m.role === "assistant" && m.message_id > newer);
  try {
    await refresh(chatId, stored);
  } catch (err) {
    return err.status === 404 ? undefined : failed(err); // deleted meanwhile
  }
  if (chatId === openId() && !runningHere()) renderKeepingEnd();
  else renderSidebar();
  if (turn.first && started) await awaitTitle(chatId);
}

const TITLE_POLLS = 8; // × 750 ms: how long the title asked of the LLM after a first exchange may take

// The chat's title is set after its first exchange: show it when it comes.
async function awaitTitle(chatId) {
  const listed = () => state.chats.find((c) => c.chat_id === chatId);
  const before = listed()?.title ?? "";
  for (let attempt = 0; attempt < TITLE_POLLS; attempt += 1) {
    await new Promise((resolve) => setTimeout(resolve, 750));
    if (turnApiGone(chatId)) return;
    let chat;
    try {
      chat = await state.api.getChat(chatId);
    } catch {
      return; // deleted, signed out: nothing to title
    }
    if (chat.title === before) continue;
    if (listed()) listed().title = chat.title;
    if (chatId === openId()) state.chat.title = chat.title;
    if (chatId === openId() && !runningHere()) render();
    else renderSidebar();
    return;
  }
}

const turnApiGone = (chatId) => !state.api || !state.chats.some((c) => c.chat_id === chatId);

// A reader at the end stays there: the "Stopped" mark or a longer stored answer stays in view.
function renderKeepingEnd() {
  const following = nearEnd();
  render();
  if (following) scrollToEnd(true);
}

export function stop() {
  const turn = runningHere();
  if (!turn) return;
  turn.stopped = true;
  turn.controller.abort();
}

export function resizeInput() {
  const input = $("input");
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, 240)}px`;
}
