// The regex-based inline renderer markdown.js had before it became linear: the reference its output
// must still equal (tests/browser/test_render.py). Quadratic on unclosed emphasis; never served.
// A small Markdown renderer for model output: paragraphs, headings, code blocks, lists, tables,
// quotes, rules, emphasis, code, links. It only ever creates elements and text nodes (never HTML
// from a string), so `<script>` or `<img onerror>` in an answer is shown as text and runs nothing.

const FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^\s`]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$/;
const TASK = /^\[([ xX])\][ \t]+/;
const DELIMITER = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const SAFE_LINK = /^(https?:|mailto:)/i;

const INLINE = new RegExp(
  [
    /\\([!-/:-@[-`{-~])/, // 1 a backslash escape
    /(`+)([^`]|[^`][\s\S]*?[^`])\2(?!`)/, // 2-3 code
    /\*\*(?=\S)([\s\S]*?\S)\*\*/, // 4 strong
    /(?<![\w\\])__(?=\S)([\s\S]*?\S)__(?!\w)/, // 5 strong
    /\*(?=[^\s*])([\s\S]*?[^\s*])\*/, // 6 emphasis
    /(?<![\w\\])_(?=[^\s_])([\s\S]*?[^\s_])_(?!\w)/, // 7 emphasis
    /~~(?=\S)([\s\S]*?\S)~~/, // 8 strikethrough
    /\[([^\]\n]+)\]\(<?([^\s<>()]+(?:\([^\s<>()]*\)[^\s<>()]*)*)>?(?:[ \t]+"[^"\n]*")?\)/, // 9-10 link
    /<(https?:\/\/[^\s<>]+)>/, // 11 autolink
    /(https?:\/\/[^\s<>]*[^\s<>.,:;"'!?)\]*_~])/, // 12 bare URL
    /(\n)/, // 13 line break
  ]
    .map((r) => r.source)
    .join("|"),
  "g",
);

export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  blocks(text.replace(/\r\n?/g, "\n").replace(/\t/g, "    ").split("\n"), fragment);
  return fragment;
}

function el(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  return node;
}

function blocks(lines, parent) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) i += 1;
    else if (FENCE.test(line)) i = codeBlock(lines, i, parent);
    else if (HEADING.test(line)) i = heading(lines, i, parent);
    else if (RULE.test(line)) i = rule(i, parent);
    else if (QUOTE.test(line)) i = quote(lines, i, parent);
    else if (isTable(lines, i)) i = table(lines, i, parent);
    else if (ITEM.test(line)) i = list(lines, i, parent);
    else i = paragraph(lines, i, parent);
  }
}

function startsBlock(lines, i) {
  const line = lines[i];
  return (
    !line.trim() ||
    [FENCE, HEADING, RULE, QUOTE, ITEM].some((re) => re.test(line)) ||
    isTable(lines, i)
  );
}

function codeBlock(lines, i, parent) {
  const [, fence, lang] = lines[i].match(FENCE);
  const close = new RegExp(`^ {0,3}\\${fence[0]}{${fence.length},}[ \\t]*$`);
  const body = [];
  let j = i + 1;
  while (j < lines.length && !close.test(lines[j])) body.push(lines[j++]);
  const pre = el("pre");
  const code = el("code", body.join("\n"));
  const name = lang.replace(/[^\w+#.-]/g, "");
  if (name) {
    pre.dataset.lang = name;
    code.className = `language-${name}`;
  }
  pre.append(code);
  parent.append(pre);
  return j + 1; // past the closing fence (an unclosed one, still streaming, runs to the end)
}

function heading(lines, i, parent) {
  const [, hashes, content = ""] = lines[i].match(HEADING);
  const h = el(`h${hashes.length}`);
  inline(content, h);
  parent.append(h);
  return i + 1;
}

function rule(i, parent) {
  parent.append(el("hr"));
  return i + 1;
}

function quote(lines, i, parent) {
  const inner = [];
  let j = i;
  while (j < lines.length && QUOTE.test(lines[j])) inner.push(lines[j++].match(QUOTE)[1]);
  const node = el("blockquote");
  blocks(inner, node);
  parent.append(node);
  return j;
}

function isTable(lines, i) {
  const next = lines[i + 1];
  return next !== undefined && lines[i].includes("|") && next.includes("|") && DELIMITER.test(next);
}

function cells(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  return s.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
}

function alignment(cell) {
  if (cell.startsWith(":") && cell.endsWith(":")) return "center";
  if (cell.endsWith(":")) return "right";
  return cell.startsWith(":") ? "left" : "";
}

function row(values, tag, aligns) {
  const tr = el("tr");
  aligns.forEach((align, k) => {
    const cell = el(tag);
    if (align) cell.className = `align-${align}`;
    inline(values[k] ?? "", cell);
    tr.append(cell);
  });
  return tr;
}

function table(lines, i, parent) {
  const aligns = cells(lines[i + 1]).map(alignment);
  const thead = el("thead");
  thead.append(row(cells(lines[i]), "th", aligns));
  const tbody = el("tbody");
  let j = i + 2;
  while (j < lines.length && lines[j].trim() && lines[j].includes("|")) {
    tbody.append(row(cells(lines[j++]), "td", aligns));
  }
  const wrap = el("div"); // scrolls sideways on a narrow screen
  wrap.className = "table-wrap";
  const t = el("table");
  t.append(thead, tbody);
  wrap.append(t);
  parent.append(wrap);
  return j;
}

const indentOf = (line) => line.length - line.trimStart().length;
const isOrdered = (marker) => /\d/.test(marker);

function list(lines, i, parent) {
  const first = lines[i].match(ITEM);
  const ordered = isOrdered(first[2]);
  const node = el(ordered ? "ol" : "ul");
  if (ordered && parseInt(first[2], 10) !== 1) node.start = parseInt(first[2], 10);
  const items = [];
  let loose = false;
  let j = i;
  for (;;) {
    const m = lines[j].match(ITEM);
    const [body, next] = itemBody(lines, j + 1, m[1].length + m[2].length + 1, m[3] ?? "");
    items.push(body);
    j = next;
    let k = j;
    while (k < lines.length && !lines[k].trim()) k += 1;
    const after = k < lines.length ? lines[k].match(ITEM) : null;
    if (!after || isOrdered(after[2]) !== ordered) break;
    loose ||= k > j;
    j = k;
  }
  for (const body of items) node.append(listItem(body, loose || body.includes("")));
  parent.append(node);
  return j;
}

// The lines of one item, dedented: indented lines and lazy continuations; a blank line only
// when an indented line follows it.
function itemBody(lines, j, indent, firstLine) {
  const body = [firstLine];
  while (j < lines.length) {
    const line = lines[j];
    if (!line.trim()) {
      let k = j;
      while (k < lines.length && !lines[k].trim()) k += 1;
      if (k === lines.length || indentOf(lines[k]) < 2) break;
      while (j < k) body.push(lines[j++].trim());
    } else if (indentOf(line) >= 2) {
      body.push(line.slice(Math.min(indent, indentOf(line))));
      j += 1;
    } else if (startsBlock(lines, j)) {
      break;
    } else {
      body.push(line.trim());
      j += 1;
    }
  }
  return [body, j];
}

function listItem(body, loose) {
  const li = el("li");
  const task = body[0].match(TASK);
  if (task) {
    const box = el("input");
    box.type = "checkbox";
    box.disabled = true;
    box.defaultChecked = task[1] !== " ";
    li.append(box, " ");
    li.className = "task";
    body = [body[0].slice(task[0].length), ...body.slice(1)];
  }
  blocks(body, li);
  if (!loose) {
    for (const p of [...li.children].filter((c) => c.tagName === "P")) p.replaceWith(...p.childNodes);
  }
  return li;
}

function paragraph(lines, i, parent) {
  const body = [lines[i].trim()];
  let j = i + 1;
  while (j < lines.length && !startsBlock(lines, j)) body.push(lines[j++].trim());
  const p = el("p");
  inline(body.join("\n"), p);
  parent.append(p);
  return j;
}

function inline(text, parent) {
  let last = 0;
  for (const m of text.matchAll(INLINE)) {
    if (m.index > last) parent.append(text.slice(last, m.index));
    parent.append(inlineNode(m));
    last = m.index + m[0].length;
  }
  if (last < text.length) parent.append(text.slice(last));
}

function wrap(tag, text) {
  const node = el(tag);
  inline(text, node);
  return node;
}

function inlineNode(m) {
  const [all, escaped, , code, strong, strong2, em, em2, del, label, href, auto, bare, br] = m;
  if (escaped !== undefined) return escaped;
  if (code !== undefined) return el("code", code.replace(/^ ([\s\S]*[^ ][\s\S]*) $/, "$1"));
  if (strong !== undefined || strong2 !== undefined) return wrap("strong", strong ?? strong2);
  if (em !== undefined || em2 !== undefined) return wrap("em", em ?? em2);
  if (del !== undefined) return wrap("del", del);
  if (label !== undefined) return link(href, label) ?? all;
  if (auto !== undefined || bare !== undefined) return link(auto ?? bare, null) ?? all;
  if (br !== undefined) return el("br");
  return all;
}

export function safeHref(raw) {
  if (!SAFE_LINK.test(raw)) return null;
  try {
    const url = new URL(raw);
    return ["http:", "https:", "mailto:"].includes(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

function link(raw, label) {
  const href = safeHref(raw);
  if (href === null) return null;
  const a = el("a");
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  if (label === null) a.textContent = raw;
  else inline(label, a);
  return a;
}
