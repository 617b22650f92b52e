// The message tree from the page: regenerate an answer, edit and resend a message of yours, and
// switch between versions (‹n/m›), each a new branch beside the old one, which stays.

import { $, banner, failed, openId, render, runningHere, state } from "./state.js";
import { refresh, runTurn, startTurn } from "./turns.js";

const idOf = (node) => Number(node.dataset.messageId);
const message = (id) => state.messages.find((m) => m.message_id === id);

function canStart() {
  return openId() !== null && !runningHere() && state.chat?.status !== "ended";
}

async function regenerate(answerId) {
  if (!canStart() || !message(answerId)) return;
  banner("");
  await runTurn(startTurn(openId(), "", { kind: "regenerate", target: answerId }));
}

function openEditor(userId) {
  const m = message(userId);
  if (!canStart() || !m) return;
  state.editing = { messageId: userId, draft: m.content };
  render();
  const input = $("messages").querySelector(".edit-input");
  input?.focus();
  input?.setSelectionRange(input.value.length, input.value.length);
}

function closeEditor() {
  const id = state.editing?.messageId;
  state.editing = null;
  render();
  $("messages").querySelector(`li[data-message-id="${id}"] button.edit`)?.focus();
}

async function resend() {
  const { messageId, draft } = state.editing;
  if (!draft.trim()) return;
  if (draft === message(messageId)?.content) return closeEditor(); // nothing changed: no new branch
  if (!canStart()) return;
  banner("");
  $("input").focus(); // the editor goes away with the path below it
  await runTurn(startTurn(openId(), draft, { kind: "edit", target: messageId }));
}

// The path now runs through `messageId` (down to the newest leaf under it): shown as stored.
async function switchTo(messageId, direction) {
  const chatId = openId();
  if (!canStart() || !Number.isInteger(messageId)) return;
  try {
    state.chat = await state.api.setLeaf(chatId, messageId);
    await refresh(chatId);
  } catch (err) {
    return failed(err);
  }
  if (chatId !== openId()) return;
  render();
  // Focus stays on the arrows of the version now shown, so they can be pressed again.
  const item = $("messages").querySelector(`li[data-message-id="${messageId}"]`);
  const same = item?.querySelector(`.branches .${direction}:not(:disabled)`);
  (same ?? item?.querySelector(".branches button:not(:disabled)"))?.focus();
}

export function wireBranches() {
  const list = $("messages");
  list.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    const action = button.dataset.action;
    if (action === "regenerate") regenerate(idOf(button));
    else if (action === "edit") openEditor(idOf(button));
    else if (action === "cancel-edit") closeEditor();
    else if (action === "switch") switchTo(idOf(button), button.classList.contains("prev") ? "prev" : "next");
  });
  list.addEventListener("input", (e) => {
    if (e.target.matches(".edit-input") && state.editing) state.editing.draft = e.target.value;
  });
  list.addEventListener("submit", (e) => {
    if (!e.target.matches(".editor")) return;
    e.preventDefault();
    resend();
  });
  list.addEventListener("keydown", (e) => {
    if (!e.target.matches(".edit-input") || !state.editing) return;
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      resend();
    } else if (e.key === "Escape") {
      e.preventDefault();
      e.stopPropagation();
      closeEditor();
    }
  });
}
