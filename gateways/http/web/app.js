// The chat page: sign-in, the chat list, opening a chat, and the wiring of it all.

import { Api } from "./api.js";
import {
  $, KEYS, banner, failed, fitPlaceholder, openId, render, renderSidebar, runningHere, scrollToEnd, showSignIn,
  state,
} from "./state.js";
import { wireBranches } from "./branches.js";
import { moreResults, wireChats } from "./chats.js";
import { resizeInput, send, stop } from "./turns.js";

function signInMessage(err) {
  if (err.status === 401) return "The service refused this token. Enter the service's AUTH_TOKEN (ask whoever runs it).";
  if (err.status === 400) return `This user id is not accepted: ${err.message}`;
  return err.message;
}

async function signIn(user, token) {
  const api = new Api(user, token);
  let page;
  try {
    page = await api.listChats();
  } catch (err) {
    localStorage.removeItem(KEYS.token);
    showSignIn(signInMessage(err), user);
    return;
  }
  localStorage.setItem(KEYS.user, user);
  localStorage.setItem(KEYS.token, token);
  state.api = api;
  state.chats = page.chats;
  state.nextPage = page.next_page_token;
  $("who").textContent = user;
  $("who").title = user;
  $("signin").hidden = true;
  $("app").hidden = false;
  await route();
}

function signOut() {
  localStorage.removeItem(KEYS.token);
  history.replaceState(null, "", location.pathname);
  showSignIn();
}

// -- the chat list ----------------------------------------------------------------------------

async function moreChats() {
  try {
    const page = await state.api.listChats(state.nextPage);
    state.chats.push(...page.chats);
    state.nextPage = page.next_page_token;
    renderSidebar();
  } catch (err) {
    failed(err);
  }
}

function drawer(open) {
  const was = $("app").classList.contains("drawer-open");
  $("app").classList.toggle("drawer-open", open);
  $("backdrop").hidden = !open;
  $("menu").setAttribute("aria-expanded", String(open));
  if (open && !was) $("new-chat").focus();
  else if (was && !open && $("sidebar").contains(document.activeElement)) $("menu").focus();
}

async function deleteChat(chatId) {
  const chat = [...state.chats, ...state.search.chats].find((c) => c.chat_id === chatId);
  const dialog = $("confirm-delete");
  $("delete-title").textContent = chat?.title || "New chat";
  dialog.returnValue = "";
  dialog.showModal();
  await new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
  if (dialog.returnValue !== "delete") return;
  state.turns.get(chatId)?.controller.abort();
  try {
    await state.api.deleteChat(chatId);
  } catch (err) {
    if (err.status !== 404) return failed(err);
  }
  state.chats = state.chats.filter((c) => c.chat_id !== chatId);
  state.search.chats = state.search.chats.filter((c) => c.chat_id !== chatId);
  if (chatId === openId()) location.hash = "";
  renderSidebar();
}

// -- the conversation -------------------------------------------------------------------------

async function route() {
  const match = location.hash.match(/^#chat\/(.+)$/);
  banner("");
  drawer(false);
  if (match) await openChat(decodeURIComponent(match[1]));
  else newChat();
}

function newChat() {
  state.opening += 1;
  state.editing = null;
  state.chat = null;
  state.messages = [];
  render();
  $("input").focus();
}

async function openChat(chatId) {
  const ticket = ++state.opening;
  state.editing = null;
  try {
    const [chat, messages] = await Promise.all([state.api.getChat(chatId), state.api.messages(chatId)]);
    if (ticket !== state.opening) return;
    state.chat = chat;
    state.messages = messages;
  } catch (err) {
    if (ticket !== state.opening) return;
    if (err.status === 404 || err.status === 403) {
      history.replaceState(null, "", location.pathname);
      newChat();
    }
    return failed(err);
  }
  render();
  scrollToEnd(true);
  if (!$("input").disabled) $("input").focus();
}

// -- wiring -----------------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const user = $("signin-user").value.trim();
    if (!user) return showSignIn("Enter a user id.");
    signIn(user, $("signin-token").value.trim());
  });
  $("sign-out").addEventListener("click", signOut);
  $("new-chat").addEventListener("click", () => {
    if (location.hash) location.hash = "";
    else route();
  });
  $("more-chats").addEventListener("click", () => (state.search.text ? moreResults() : moreChats()));
  $("chat-list").addEventListener("click", (e) => {
    const button = e.target.closest("button.delete");
    if (button) deleteChat(button.dataset.chatId);
    else if (e.target.closest("a")) drawer(false);
  });
  $("menu").addEventListener("click", () => drawer(!$("app").classList.contains("drawer-open")));
  $("backdrop").addEventListener("click", () => drawer(false));
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && $("app").classList.contains("drawer-open")) drawer(false);
    else if (e.key === "Escape" && runningHere() && !e.target.closest("dialog")) stop();
  });
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  $("input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $("input").addEventListener("input", resizeInput);
  new ResizeObserver(fitPlaceholder).observe($("input")); // a rotated phone, a resized window
  $("stop").addEventListener("click", stop);
  wireChats();
  wireBranches();
  // Following a chat link, setting location.hash and Back/Forward all fire popstate.
  window.addEventListener("popstate", () => state.api && route());
}

wire();
const user = localStorage.getItem(KEYS.user);
if (user) signIn(user, localStorage.getItem(KEYS.token) ?? "");
else showSignIn();
