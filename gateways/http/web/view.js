// Building the page's parts from API data: messages (erased ones under a fold), the running turn,
// the token meter and the chat list. Text is only ever set as text; answers go through Markdown.

import { decorateCode } from "./code.js";
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

function messageItem(m) {
  const li = el("li", `msg ${m.role}`);
  li.dataset.messageId = m.message_id;
  li.append(el("div", "role", ROLES[m.role] ?? m.role), body(m.role, m.content));
  if (m.status === "interrupted") {
    li.classList.add("stopped");
    li.append(el("div", "note", "Stopped: the answer was cut off here."));
  }
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

// The running turn: the user's message and the answer so far (a typing indicator before it starts).
function turnItems(turn) {
  const user = el("li", "msg user pending");
  user.append(el("div", "role", ROLES.user), body("user", turn.content));
  const answer = el("li", "msg assistant streaming");
  answer.setAttribute("aria-busy", "true");
  answer.append(el("div", "role", ROLES.assistant), el("div", "body md"));
  paintAnswer(answer, turn.text);
  return [user, answer];
}

export function paintAnswer(item, text) {
  const target = item.querySelector(".body");
  if (text) target.replaceChildren(renderAnswer(text));
  else target.replaceChildren(el("span", "typing", "Thinking…"));
}

export function renderMessages(list, messages, turn) {
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
    ...items.map((x) => (Array.isArray(x) ? foldItem(x, open.has(String(x[0].message_id))) : messageItem(x))),
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

export function chatItem(chat, active) {
  const title = chat.title || "New chat";
  const li = el("li", active ? "chat-item active" : "chat-item");
  const link = el("a", "", title);
  link.href = chatHash(chat.chat_id);
  link.title = title;
  if (active) link.setAttribute("aria-current", "page");
  const remove = el("button", "icon delete", "×");
  remove.type = "button";
  remove.dataset.chatId = chat.chat_id;
  remove.setAttribute("aria-label", `Delete chat: ${title}`);
  li.append(link, remove);
  return li;
}
