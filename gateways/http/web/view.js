// Building the page's parts from API data: messages (erased ones under a fold), the running turn,
// the token meter and the chat list. Text is only ever set as text; answers go through Markdown.

import { decorateCode } from "./code.js";
import { messageControls, messageEditor } from "./controls.js";
import { renderMarkdown } from "./markdown.js";

const ROLES = { user: "You", assistant: "Assistant", system: "System prompt" };
const number = new Intl.NumberFormat("en");

export function el(tag, className = "", text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export const chatHash = (chatId) => `#chat/${encodeURIComponent(chatId)}`;

const renderAnswer = (text) => decorateCode(renderMarkdown(text));

function body(role, content) {
  const node = el("div", role === "assistant" ? "body md" : "body plain");
  if (role === "assistant") node.append(renderAnswer(content));
  else node.textContent = content;
  return node;
}

// `view`: {busy, editing} — a turn runs on the chat; the edit open ({messageId, draft}) or null.
function messageItem(m, view = { busy: true, editing: null }) {
  const li = el("li", `msg ${m.role}`);
  li.dataset.messageId = m.message_id;
  li.append(el("div", "role", ROLES[m.role] ?? m.role));
  const editing = view.editing?.messageId === m.message_id && !m.erased;
  const content = editing ? messageEditor(m.message_id, view.editing.draft) : body(m.role, m.content);
  li.append(content);
  if (m.status === "interrupted") {
    li.classList.add("stopped");
    li.append(el("div", "note", "Stopped: the answer was cut off here."));
  }
  if (m.role !== "system" && !editing) li.append(messageControls(m, content, view.busy || m.erased));
  return li;
}

function foldItem(messages, open) {
  const n = messages.length;
  const li = el("li", "fold");
  li.dataset.first = messages[0].message_id;
  const details = el("details");
  details.open = open;
  const summary = el("summary", "", `${n} earlier message${n === 1 ? "" : "s"} left the model's context`);
  const hint = el("p", "fold-hint", "The model no longer sees these: they were evicted to keep the chat within its window.");
  const list = el("ol", "messages erased-list");
  list.append(...messages.map((m) => messageItem(m)));
  for (const item of list.children) item.classList.add("erased");
  details.append(summary, hint, list);
  li.append(details);
  return li;
}

// The running turn: the user's message (none for a regenerate) and the answer so far (a typing
// indicator before it starts).
function turnItems(turn) {
  const user = el("li", "msg user pending");
  user.append(el("div", "role", ROLES.user), body("user", turn.content));
  const answer = el("li", "msg assistant streaming");
  answer.setAttribute("aria-busy", "true");
  answer.append(el("div", "role", ROLES.assistant), el("div", "body md"));
  paintAnswer(answer, turn.text);
  return turn.kind === "regenerate" ? [answer] : [user, answer];
}

export function paintAnswer(item, text) {
  const target = item.querySelector(".body");
  if (text) target.replaceChildren(renderAnswer(text));
  else target.replaceChildren(el("span", "typing", "Thinking…"));
}

export function renderMessages(list, messages, turn, editing = null) {
  const open = new Set([...list.querySelectorAll(".fold details[open]")].map((d) => d.parentElement.dataset.first));
  const items = [];
  let fold = null;
  for (const m of messages) {
    if (m.erased) {
      if (!fold) items.push((fold = []));
      fold.push(m);
    } else {
      fold = null;
      items.push(m);
    }
  }
  list.replaceChildren(
    ...items.map((x) =>
      Array.isArray(x) ? foldItem(x, open.has(String(x[0].message_id))) : messageItem(x, { busy: !!turn, editing }),
    ),
  );
  if (turn) list.append(...turnItems(turn));
}

export function renderMeter(meter, window, reserve) {
  meter.hidden = !window;
  if (!window) return;
  const { tokens, context_tokens: context, messages } = window;
  const used = Math.min(100, (tokens / context) * 100);
  meter.querySelector(".meter-used").style.width = `${used}%`;
  meter.querySelector(".meter-reserved").style.width = `${Math.min(100 - used, (reserve / context) * 100)}%`;
  meter.querySelector(".meter-label").textContent = `${number.format(tokens)} / ${number.format(context)} tokens`;
  meter.setAttribute("aria-valuemax", String(context));
  meter.setAttribute("aria-valuenow", String(tokens));
  meter.setAttribute("aria-valuetext", `${tokens} of ${context} tokens in the model's context`);
  meter.title =
    `The model sees ${messages} message${messages === 1 ? "" : "s"}: ${number.format(tokens)} of its ` +
    `${number.format(context)}-token window, with ${number.format(reserve)} kept free for the answer ` +
    "(hatched). When it fills, the oldest messages leave the context.";
  meter.classList.toggle("full", (tokens + reserve) / context > 0.85);
}

// `renaming`: the draft title while this chat is renamed in place, else null.
// `query`: the search that found it (its snippet, if any, shows with the words found marked).
export function chatItem(chat, active, renaming = null, query = "") {
  const title = chat.title || "New chat";
  const li = el("li", active ? "chat-item active" : "chat-item");
  li.dataset.chatId = chat.chat_id;
  if (renaming !== null) {
    const input = el("input", "rename-input");
    input.value = renaming;
    input.maxLength = 200;
    input.dataset.chatId = chat.chat_id;
    input.setAttribute("aria-label", `Rename chat: ${title} (Enter saves, Escape cancels)`);
    li.append(input);
    return li;
  }
  const link = el("a", "");
  link.append(el("span", "chat-name", title));
  if (chat.snippet) link.append(snippet(chat.snippet, query));
  link.href = chatHash(chat.chat_id);
  link.title = title;
  if (active) link.setAttribute("aria-current", "page");
  li.append(link, chatButton("rename", "✎", `Rename chat: ${title}`, chat), chatButton("delete", "×", `Delete chat: ${title}`, chat));
  return li;
}

function chatButton(action, symbol, label, chat) {
  const button = el("button", `icon ${action}`, symbol);
  button.type = "button";
  button.dataset.chatId = chat.chat_id;
  button.setAttribute("aria-label", label);
  button.title = label;
  return button;
}

// The snippet as text, the query's words in it marked.
function snippet(text, query) {
  const node = el("span", "snippet");
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  const escaped = words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const parts = escaped.length ? text.split(new RegExp(`(${escaped.join("|")})`, "gi")) : [text];
  parts.forEach((part, i) => node.append(i % 2 ? el("mark", "", part) : part));
  return node;
}
