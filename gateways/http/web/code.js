// Code blocks in answers: syntax colours and a copy button.
// highlight.js (vendored: VENDOR.md) only parses: its HTML string is never used. The elements are
// built from the token tree it returns, so the Trusted Types policy ('none') still holds.

import { copyButton } from "./copy.js";
import hljs from "./highlight.min.js";

const LARGEST = 100_000; // characters of code coloured; a larger block stays plain
const CACHED = 64; // token trees kept, so blocks that no longer change are not parsed every frame
const trees = new Map();

// Colours every `pre > code` with a known language and gives every block a copy button.
export function decorateCode(root) {
  for (const code of root.querySelectorAll("pre > code")) {
    const pre = code.parentElement;
    if (pre.dataset.lang) colour(code, pre.dataset.lang.toLowerCase());
    pre.append(copyButton("Copy the code", () => code.textContent, () => code));
  }
  return root;
}

function colour(code, language) {
  const text = code.textContent;
  const root = text.length <= LARGEST && hljs.getLanguage(language) ? tree(text, language) : null;
  if (!root) return;
  const nodes = document.createDocumentFragment();
  build(root, nodes);
  if (nodes.textContent === text) code.replaceChildren(nodes); // the colours never change the code
}

function tree(text, language) {
  const key = `${language}\u0000${text}`;
  if (!trees.has(key)) {
    let root = null;
    try {
      const emitter = hljs.highlight(text, { language, ignoreIllegals: true })._emitter;
      root = emitter?.root ?? null; // not public API: without it, the block stays plain
    } catch {
      root = null;
    }
    trees.set(key, root);
    if (trees.size > CACHED) trees.delete(trees.keys().next().value);
  }
  return trees.get(key);
}

function build(node, parent) {
  for (const child of node.children ?? []) {
    if (typeof child === "string") {
      parent.append(child);
    } else {
      const span = document.createElement("span");
      if (child.scope) span.className = scopeClass(child.scope);
      build(child, span);
      parent.append(span);
    }
  }
}

// highlight.js's class names: "title.function" -> "hljs-title function_", "language:css" -> "language-css".
function scopeClass(scope) {
  if (scope.startsWith("language:")) return scope.replace("language:", "language-");
  const [first, ...rest] = scope.split(".");
  return [`hljs-${first}`, ...rest.map((part, i) => `${part}${"_".repeat(i + 1)}`)].join(" ");
}
