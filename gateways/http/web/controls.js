// A message's controls: branch arrows ‹n/m›, copy, regenerate (answers), edit (your messages),
// and the inline editor an edit opens. Built here; what they do is in branches.js.

import { copyButton } from "./copy.js";

function el(tag, className, text) {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function actionButton(action, label, messageId, disabled) {
  const button = el("button", `icon act ${action}`);
  button.type = "button";
  button.dataset.action = action;
  button.dataset.messageId = messageId;
  button.setAttribute("aria-label", label);
  button.title = label;
  button.disabled = disabled;
  return button;
}

// ‹ n/m ›: the versions of this message (its siblings); the arrows switch the active branch.
function arrows(m, busy) {
  const { ids, position, count } = m.siblings;
  const group = el("div", "branches");
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", `Version ${position} of ${count}`);
  const prev = actionButton("switch", `Previous version (${position - 1} of ${count})`, ids[position - 2], busy);
  prev.classList.add("prev");
  prev.disabled = busy || position <= 1;
  const next = actionButton("switch", `Next version (${position + 1} of ${count})`, ids[position], busy);
  next.classList.add("next");
  next.disabled = busy || position >= count;
  const where = el("span", "branch-position", `${position}/${count}`);
  where.setAttribute("aria-hidden", "true");
  group.append(prev, where, next);
  return group;
}

// `busy`: a turn runs on this chat, so nothing may start another or move the path under it.
export function messageControls(m, body, busy) {
  const bar = el("div", "controls");
  if (m.siblings && m.siblings.count > 1) bar.append(arrows(m, busy));
  const what = m.role === "assistant" ? "answer" : "message";
  bar.append(copyButton(`Copy the ${what}`, () => m.content, () => body, "icon act copy"));
  if (m.message_id > 0 && m.role === "assistant") {
    bar.append(actionButton("regenerate", "Regenerate the answer", m.message_id, busy));
  } else if (m.message_id > 0 && m.role === "user") {
    bar.append(actionButton("edit", "Edit the message", m.message_id, busy));
  }
  return bar;
}

// The editor that replaces a message of yours: Enter (or Send) resends it, Escape cancels.
export function messageEditor(messageId, draft) {
  const form = el("form", "editor");
  form.dataset.messageId = messageId;
  const label = el("label", "visually-hidden", "Edit the message");
  label.htmlFor = `edit-${messageId}`;
  const input = el("textarea", "edit-input");
  input.id = `edit-${messageId}`;
  input.rows = Math.min(8, draft.split("\n").length + 1);
  input.value = draft;
  const cancel = el("button", "cancel", "Cancel");
  cancel.type = "button";
  cancel.dataset.action = "cancel-edit";
  const save = el("button", "primary", "Send");
  save.type = "submit";
  const buttons = el("div", "editor-actions");
  buttons.append(cancel, save);
  form.append(label, input, buttons);
  return form;
}
