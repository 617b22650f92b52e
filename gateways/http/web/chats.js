// The chat list's own controls: search (titles and contents, debounced) and rename in place.

import { $, failed, refocus, render, renderSidebar, state } from "./state.js";

const DEBOUNCE = 250; // ms after the last key before the search runs
let timer = 0;
let running = null; // the search in flight, aborted by a newer one

export async function search(text) {
  const ticket = ++state.search.ticket;
  running?.abort();
  running = null;
  if (!text) {
    state.search = { ...state.search, text: "", chats: [], nextPage: "" };
    return renderSidebar();
  }
  const controller = (running = new AbortController());
  try {
    const page = await state.api.listChats("", text, controller.signal);
    if (ticket !== state.search.ticket) return;
    state.search = { text, chats: page.chats, nextPage: page.next_page_token, ticket };
    renderSidebar();
  } catch (err) {
    if (err.name !== "AbortError" && ticket === state.search.ticket) failed(err);
  }
}

export async function moreResults() {
  const { text, nextPage, ticket } = state.search;
  try {
    const page = await state.api.listChats(nextPage, text);
    if (ticket !== state.search.ticket) return;
    state.search.chats.push(...page.chats);
    state.search.nextPage = page.next_page_token;
    renderSidebar();
  } catch (err) {
    failed(err);
  }
}

function clearSearch() {
  $("search").value = "";
  clearTimeout(timer);
  search("");
}

function wireSearch() {
  const box = $("search");
  box.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => search(box.value.trim()), DEBOUNCE);
  });
  box.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && box.value) {
      e.preventDefault();
      e.stopPropagation(); // the drawer stays open
      clearSearch();
    } else if (e.key === "Enter") {
      e.preventDefault();
      clearTimeout(timer);
      search(box.value.trim());
    } else if (e.key === "ArrowDown") {
      const first = $("chat-list").querySelector("a");
      if (first) {
        e.preventDefault();
        first.focus();
      }
    }
  });
  // Up and Down walk the list's links, as in a menu; Up from the first goes back to the box.
  $("chat-list").addEventListener("keydown", (e) => {
    if (!["ArrowDown", "ArrowUp"].includes(e.key) || !e.target.matches("a")) return;
    const links = [...$("chat-list").querySelectorAll("a")];
    const i = links.indexOf(e.target) + (e.key === "ArrowDown" ? 1 : -1);
    e.preventDefault();
    (i < 0 ? box : links[Math.min(i, links.length - 1)]).focus();
  });
}

// -- rename in place -----------------------------------------------------------------------------

function listed(chatId) {
  return [...state.chats, ...state.search.chats].filter((c) => c.chat_id === chatId);
}

function startRename(chatId) {
  const chat = listed(chatId)[0];
  if (!chat) return;
  state.renaming = { chatId, draft: chat.title || "" };
  renderSidebar();
  const input = $("chat-list").querySelector(".rename-input");
  refocus(input);
  input?.select();
}

function endRename(focusBack) {
  const chatId = state.renaming?.chatId;
  state.renaming = null;
  renderSidebar();
  if (focusBack) $("chat-list").querySelector(`li[data-chat-id="${CSS.escape(chatId)}"] .rename`)?.focus();
}

async function saveRename() {
  const { chatId, draft } = state.renaming;
  const title = draft.trim();
  const before = listed(chatId)[0]?.title ?? "";
  if (!title || title === before) return endRename(true);
  try {
    const chat = await state.api.rename(chatId, title);
    for (const c of listed(chatId)) c.title = chat.title;
    if (state.chat?.chat_id === chatId) state.chat.title = chat.title;
  } catch (err) {
    failed(err);
  }
  render(); // the title in the top bar too
  endRename(true);
}

function wireRename() {
  const list = $("chat-list");
  list.addEventListener("click", (e) => {
    const button = e.target.closest("button.rename");
    if (button) startRename(button.dataset.chatId);
  });
  list.addEventListener("input", (e) => {
    if (e.target.matches(".rename-input") && state.renaming) state.renaming.draft = e.target.value;
  });
  list.addEventListener("keydown", (e) => {
    if (!e.target.matches(".rename-input") || !state.renaming) return;
    if (e.key === "Enter" && !e.isComposing) {
      e.preventDefault();
      saveRename();
    } else if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      endRename(true);
    }
  });
  // Leaving the field cancels, as Escape does: only Enter saves.
  list.addEventListener("focusout", (e) => {
    if (!e.target.matches(".rename-input")) return;
    // A redraw replaces the field and focuses the new one: only a real leave cancels.
    setTimeout(() => {
      if (state.renaming && !document.activeElement?.matches(".rename-input")) endRename(false);
    });
  });
}

export function wireChats() {
  wireSearch();
  wireRename();
}
