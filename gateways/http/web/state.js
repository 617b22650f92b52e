// What the page's modules share: the state, and how it is shown (sign-in, errors, the open chat).

import { chatItem, renderMessages, renderMeter } from "./view.js";

export const $ = (id) => document.getElementById(id);
export const KEYS = { user: "chatservice.user", token: "chatservice.token" };

export const state = {
  api: null,
  chats: [], // the sidebar, newest first
  nextPage: "",
  chat: null, // the open chat (with its window), or null for a chat not created yet
  messages: [], // the open chat's messages, erased ones included
  turns: new Map(), // chat_id -> the turn this page is running on it
  opening: 0, // the latest chat load; older ones are dropped
  creating: false, // a chat is being created for the first message
  editing: null, // {messageId, draft}: the message of yours being edited in place
  renaming: null, // {chatId, draft}: the chat being renamed in place
  search: { text: "", chats: [], nextPage: "", ticket: 0 }, // the chat list while a search is typed
};

export const openId = () => state.chat?.chat_id ?? null;
export const runningHere = () => state.turns.get(openId()) ?? null;

// `user`: the id to show (a refused first sign-in keeps the one typed).
export function showSignIn(message = "", user = localStorage.getItem(KEYS.user) ?? "") {
  for (const turn of state.turns.values()) turn.controller.abort();
  state.api = null;
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-user").value = user;
  $("signin-error").textContent = message;
  $("signin-error").hidden = !message;
  ($("signin-user").value ? $("signin-token") : $("signin-user")).focus();
}

export function banner(message) {
  $("banner").textContent = message;
  $("banner").hidden = !message;
}

export function failed(err) {
  if (err.status === 401) showSignIn("The service no longer accepts this token: sign in again.");
  else banner(err.message);
}

export function renderSidebar() {
  const { text, chats, nextPage } = state.search;
  const list = $("chat-list");
  const focused = document.activeElement?.closest?.(".rename-input") !== null;
  const draft = (c) => (state.renaming?.chatId === c.chat_id ? state.renaming.draft : null);
  const shown = text ? chats : state.chats;
  list.replaceChildren(...shown.map((c) => chatItem(c, c.chat_id === openId(), draft(c), text)));
  list.setAttribute("aria-label", text ? `Chats matching “${text}”` : "Chats");
  $("search-none").hidden = !text || chats.length > 0;
  $("more-chats").hidden = !(text ? nextPage : state.nextPage);
  if (focused) refocus(list.querySelector(".rename-input")); // a redraw keeps the rename going
}

// Focus an input that replaced the one being typed in, the caret at its end.
export function refocus(input) {
  if (!input) return;
  input.focus();
  input.setSelectionRange(input.value.length, input.value.length);
}

export function render() {
  const chat = state.chat;
  const turn = runningHere();
  const ended = chat?.status === "ended";
  $("chat-title").textContent = chat?.title || "New chat";
  document.title = `${chat?.title || "New chat"} · chatservice`;
  $("settings").hidden = chat !== null;
  const editingFocused = document.activeElement?.classList.contains("edit-input");
  renderMessages($("messages"), state.messages, turn, state.editing);
  if (editingFocused) refocus($("messages").querySelector(".edit-input"));
  renderMeter($("meter"), chat?.window, chat?.params.max_tokens ?? 0);
  $("input").disabled = turn !== null || ended;
  fitPlaceholder();
  $("send").hidden = turn !== null;
  $("stop").hidden = turn === null;
  renderSidebar();
}

// The input's hint, the long one where it fits on one line (a phone gets the short one).
const PLACEHOLDERS = {
  open: ["Message (Enter sends, Shift+Enter adds a line)", "Message"],
  ended: ["This chat has ended: start a new one.", "Chat ended: start a new one."],
};
const ruler = document.createElement("canvas").getContext("2d");

export function fitPlaceholder() {
  const input = $("input");
  const [long, short] = PLACEHOLDERS[state.chat?.status === "ended" ? "ended" : "open"];
  const style = getComputedStyle(input);
  const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  ruler.font = `${style.fontStyle} ${style.fontWeight} ${style.fontSize} ${style.fontFamily}`; // not every browser computes "font"
  const text = ruler.measureText(long).width <= room ? long : short;
  if (input.placeholder !== text) input.placeholder = text;
}

export const nearEnd = () => {
  const box = $("conversation");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 120;
};

export function scrollToEnd(force = false) {
  const box = $("conversation");
  if (force || nearEnd()) box.scrollTop = box.scrollHeight;
}
