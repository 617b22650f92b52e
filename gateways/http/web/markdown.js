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

// Inline markup is scanned in one pass. A regular expression with lazy bodies (`\*\*(\S.*?\S)\*\*`)
// would try every opener against the rest of the text, so an answer full of unclosed emphasis
// (`**a **a **a ...`) took quadratic time, and the page renders the answer again on every delta.
// Here each opener finds its closer by a binary search in the closers listed up front. What
// matches is what those expressions matched: escapes, code, strong, emphasis, strikethrough,
// links, autolinks, bare URLs and line breaks, the first rule that fits at the leftmost place.

const SPACE = /\s/;
const WORD = /[A-Za-z0-9_]/;
const PUNCT = /[!-/:-@[-`{-~]/;
const URL_TAIL = /[.,:;"'!?)\]*_~]/;
const nonSpace = (ch) => ch !== undefined && !SPACE.test(ch);
const notWord = (ch) => ch === undefined || !WORD.test(ch);
const urlChar = (ch) => ch !== undefined && !/[\s<>()]/.test(ch);
const linkChar = (ch) => ch !== undefined && !/[\s<>]/.test(ch);

// The first entry of a sorted array that is at least `min`, or undefined.
function firstFrom(sorted, min) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < min) lo = mid + 1;
    else hi = mid;
  }
  return sorted[lo];
}

// Where each kind of delimiter may close, in order (built once per text, in one pass).
function closers(t) {
  const c = { strong: [], strong2: [], em: [], em2: [], del: [], stops: [], runs: new Map() };
  for (let p = 0; p < t.length; p += 1) {
    const ch = t[p];
    const before = t[p - 1];
    if (ch === "*" || ch === "~" || ch === "_") {
      if (t[p + 1] === ch && nonSpace(before)) {
        if (ch === "*") c.strong.push(p);
        else if (ch === "~") c.del.push(p);
        else if (notWord(t[p + 2])) c.strong2.push(p);
      }
      if (ch === "*" && nonSpace(before) && before !== "*") c.em.push(p);
      if (ch === "_" && nonSpace(before) && before !== "_" && notWord(t[p + 1])) c.em2.push(p);
    } else if (ch === "]" || ch === "\n") {
      c.stops.push(p);
    } else if (ch === "`" && before !== "`") {
      let end = p;
      while (t[end] === "`") end += 1;
      const starts = c.runs.get(end - p) ?? [];
      starts.push(p);
      c.runs.set(end - p, starts);
    }
  }
  return c;
}

// The token that starts at `i`, or null: [kind, end, ...parts].
function tokenAt(t, i, c, links) {
  const ch = t[i];
  if (ch === "\\") return PUNCT.test(t[i + 1] ?? "") ? ["escaped", i + 2, t[i + 1]] : null;
  if (ch === "`") return code(t, i, c);
  if (ch === "*") return pair(t, i, c.strong, 2, "strong") ?? single(t, i, c.em, "*", "em");
  if (ch === "_") {
    if (!notWord(t[i - 1]) || t[i - 1] === "\\") return null;
    return pair(t, i, c.strong2, 2, "strong") ?? single(t, i, c.em2, "_", "em");
  }
  if (ch === "~") return pair(t, i, c.del, 2, "del");
  if (ch === "[") return linkAt(t, i, c, links);
  if (ch === "<") return autolink(t, i);
  if (ch === "h") return bareUrl(t, i);
  if (ch === "\n") return ["br", i + 1];
  return null;
}

// `**x**`, `__x__`, `~~x~~`: the opener, a non-space, then the first closer after one character.
function pair(t, i, ends, width, kind) {
  if (t[i + 1] !== t[i] || !nonSpace(t[i + width])) return null;
  const end = firstFrom(ends, i + width + 1);
  return end === undefined ? null : [kind, end + width, t.slice(i + width, end)];
}

// `*x*`, `_x_`: the opener, then neither a space nor the delimiter, then the first closer.
function single(t, i, ends, delimiter, kind) {
  if (!nonSpace(t[i + 1]) || t[i + 1] === delimiter) return null;
  const end = firstFrom(ends, i + 2);
  return end === undefined ? null : [kind, end + 1, t.slice(i + 1, end)];
}

// A run of backticks (from `i` to its end) closed by the next run of exactly that length.
function code(t, i, c) {
  let open = i;
  while (t[open] === "`") open += 1;
  if (open >= t.length) return null;
  const close = firstFrom(c.runs.get(open - i) ?? [], open + 1);
  return close === undefined ? null : ["code", close + open - i, t.slice(open, close)];
}

// `[label](url)` or `[label](url "title")`; the part after a `]` is parsed once, however many
// openers share that `]`.
function linkAt(t, i, c, links) {
  const close = firstFrom(c.stops, i + 1);
  if (close === undefined || close === i + 1 || t[close] !== "]" || t[close + 1] !== "(") return null;
  if (!links.has(close)) links.set(close, destination(t, close + 2));
  const dest = links.get(close);
  return dest === null ? null : ["link", dest[0], t.slice(i + 1, close), dest[1]];
}

// `<?url>?` with balanced parentheses, an optional title, then `)`: [end, url] or null.
function destination(t, k) {
  if (t[k] === "<") k += 1;
  const start = k;
  while (urlChar(t[k])) k += 1;
  if (k === start) return null;
  while (t[k] === "(") {
    let m = k + 1;
    while (urlChar(t[m])) m += 1;
    if (t[m] !== ")") break;
    k = m + 1;
    while (urlChar(t[k])) k += 1;
  }
  const url = t.slice(start, k);
  if (t[k] === ">") k += 1;
  if (t[k] === " " || t[k] === "\t") {
    let m = k;
    while (t[m] === " " || t[m] === "\t") m += 1;
    if (t[m] === '"') {
      let q = m + 1;
      while (q < t.length && t[q] !== '"' && t[q] !== "\n") q += 1;
      if (t[q] === '"' && t[q + 1] === ")") return [q + 2, url];
    }
  }
  return t[k] === ")" ? [k + 1, url] : null;
}

function scheme(t, i) {
  if (t.startsWith("http://", i)) return 7;
  return t.startsWith("https://", i) ? 8 : 0;
}

function autolink(t, i) {
  const length = scheme(t, i + 1);
  if (!length) return null;
  let k = i + 1 + length;
  while (linkChar(t[k])) k += 1;
  return k > i + 1 + length && t[k] === ">" ? ["url", k + 1, t.slice(i + 1, k)] : null;
}

// A bare URL runs to the next space or angle bracket, less trailing punctuation.
function bareUrl(t, i) {
  const length = scheme(t, i);
  if (!length) return null;
  let k = i + length;
  while (linkChar(t[k])) k += 1;
  while (k > i + length && URL_TAIL.test(t[k - 1])) k -= 1;
  return k > i + length ? ["url", k, t.slice(i, k)] : null;
}

function inline(text, parent) {
  const c = closers(text);
  const links = new Map();
  let last = 0;
  let i = 0;
  while (i < text.length) {
    const token = tokenAt(text, i, c, links);
    if (token === null) {
      i += 1;
      continue;
    }
    if (i > last) parent.append(text.slice(last, i));
    parent.append(inlineNode(token, text.slice(i, token[1])));
    last = i = token[1];
  }
  if (last < text.length) parent.append(text.slice(last));
}

function wrap(tag, text) {
  const node = el(tag);
  inline(text, node);
  return node;
}

function inlineNode([kind, , part, href], all) {
  if (kind === "escaped") return part;
  if (kind === "code") return el("code", part.replace(/^ ([\s\S]*[^ ][\s\S]*) $/, "$1"));
  if (kind === "strong" || kind === "em" || kind === "del") return wrap(kind, part);
  if (kind === "link") return link(href, part) ?? all;
  if (kind === "url") return link(part, null) ?? all;
  return el("br");
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
