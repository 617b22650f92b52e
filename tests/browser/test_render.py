"""Model output as Markdown, and HTML in any message shown as text that runs nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Serve
from tests.browser.web import WebPage, new_user
from tests.llm_server import FakeLLM

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.ray]
OpenPage = Callable[..., Any]

XSS = '<script>window.__xss = 1</script><img src="x" onerror="window.__xss = 2"> [click](javascript:window.__xss=3)'
ANSWER = f"""Here is **the plan**:

1. Read the `config`
2. Run it

| step | time |
|------|-----:|
| build | 2 s |
| test | 5 s |

```python
print("<b>hi</b>")
```

{XSS}"""

LINK = 'target="_blank" rel="noopener noreferrer nofollow"'
CASES = [
    (
        "# Title\n\nSome **bold**, *em*, ~~gone~~ and `code`.",
        "<h1>Title</h1><p>Some <strong>bold</strong>, <em>em</em>, <del>gone</del> and <code>code</code>.</p>",
    ),
    (
        "```python\nprint('<b>hi</b>')\n```",
        '<pre data-lang="python"><code class="language-python">print(\'&lt;b&gt;hi&lt;/b&gt;\')</code></pre>',
    ),
    ("```\nstill streaming <b>", "<pre><code>still streaming &lt;b&gt;</code></pre>"),
    (
        "- a\n- b\n  - c\n\n1. x\n2. y",
        "<ul><li>a</li><li>b<ul><li>c</li></ul></li></ul><ol><li>x</li><li>y</li></ol>",
    ),
    ("3. three\n4. four", '<ol start="3"><li>three</li><li>four</li></ol>'),
    ("- a\n\n- b", "<ul><li><p>a</p></li><li><p>b</p></li></ul>"),
    (
        "- [x] done\n- [ ] todo",
        '<ul><li class="task"><input type="checkbox" disabled="" checked=""> done</li>'
        '<li class="task"><input type="checkbox" disabled=""> todo</li></ul>',
    ),
    (
        "| a | b |\n|:--|--:|\n| 1 | **2** |",
        '<div class="table-wrap"><table><thead><tr><th class="align-left">a</th><th class="align-right">b</th>'
        '</tr></thead><tbody><tr><td class="align-left">1</td><td class="align-right"><strong>2</strong></td>'
        "</tr></tbody></table></div>",
    ),
    (
        "> quote\n\n---\n\nline one\nline two",
        "<blockquote><p>quote</p></blockquote><hr><p>line one<br>line two</p>",
    ),
    (r"\*not em\* and `**not bold**`", "<p>*not em* and <code>**not bold**</code></p>"),
    (
        "[click](javascript:alert(1)) [ok](https://example.com/a_(b)) see https://example.com/x.",
        f'<p>[click](javascript:alert(1)) <a href="https://example.com/a_(b)" {LINK}>ok</a> '
        f'see <a href="https://example.com/x" {LINK}>https://example.com/x</a>.</p>',
    ),
    (
        '<script>alert(1)</script><img src=x onerror="alert(1)">',
        '<p>&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror="alert(1)"&gt;</p>',
    ),
    (
        "[x](data:text/html,<script>alert(1)</script>)",
        "<p>[x](data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;)</p>",
    ),
]


async def test_the_markdown_renderer_builds_only_whitelisted_elements(
    serve_web: Serve, open_page: OpenPage
) -> None:
    web: WebPage = await open_page(serve_web())
    rendered = await web.page.evaluate(
        """async cases => {
            const { renderMarkdown } = await import('/web/markdown.js');
            return cases.map(text => {
                const box = document.createElement('div');
                box.append(renderMarkdown(text));
                return box.innerHTML;
            });
        }""",
        [text for text, _ in CASES],
    )
    assert rendered == [html for _, html in CASES]


async def test_answers_render_as_markdown_and_html_in_any_message_runs_nothing(
    serve_web: Serve, open_page: OpenPage, fake_llm: FakeLLM
) -> None:
    web: WebPage = await open_page(serve_web())
    await web.sign_in(new_user())
    fake_llm.behaviour.reply = lambda messages: ANSWER
    await web.ask(XSS)

    for shown in ("live", "reloaded"):
        answer = web.page.locator("#messages > li.msg.assistant .body")
        await expect(answer.locator("strong")).to_have_text("the plan")
        await expect(answer.locator("ol > li")).to_have_text(["Read the config", "Run it"])
        await expect(answer.locator("ol code")).to_have_text("config")
        await expect(answer.locator("table tbody tr")).to_have_count(2)
        await expect(answer.locator("td.align-right")).to_have_text(["2 s", "5 s"])
        await expect(answer.locator("pre code")).to_have_text('print("<b>hi</b>")')
        await expect(answer.locator("p").last).to_have_text(XSS)
        user = web.page.locator("#messages > li.msg.user .body")
        await expect(user).to_have_text(XSS)
        assert await web.page.locator("#messages script, #messages img, #messages a").count() == 0
        assert await web.page.evaluate("typeof window.__xss") == "undefined", shown
        if shown == "live":
            await web.shot("markdown")
            await web.page.reload()


REFERENCE = Path(__file__).with_name("markdown_reference.js").read_text()
# Characters and runs that mean something inline, and plain text between them.
ALPHABET = [
    *"*_~`[]()<>\\\"' \n\ta.:!",
    "**", "__", "~~", "``", "```", "http://", "https://x.y/", "](", "[a](", "](<", "x", "word",
]  # fmt: skip


async def test_the_linear_renderer_renders_what_the_regex_renderer_rendered(
    serve_web: Serve, open_page: OpenPage
) -> None:
    """Thousands of random texts from Markdown's inline characters: the same DOM as before."""
    web: WebPage = await open_page(serve_web())

    async def reference(route: Any) -> None:
        await route.fulfill(body=REFERENCE, content_type="text/javascript")

    await web.page.route("**/web/markdown-reference.js", reference)  # same origin: CSP allows it
    mismatches = await web.page.evaluate(
        """async alphabet => {
            const now = await import('/web/markdown.js');
            const before = await import('/web/markdown-reference.js');
            let seed = 13;
            const random = n => {  // mulberry32: integer arithmetic, no float rounding
                seed = (seed + 0x6d2b79f5) | 0;
                let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
                t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
                return ((t ^ (t >>> 14)) >>> 0) % n;
            };
            const html = (render, text) => {
                const box = document.createElement('div');
                box.append(render(text));
                return box.innerHTML;
            };
            const found = [];
            const marked = new Set();
            for (let n = 0; n < 4000 && found.length < 5; n += 1) {
                let text = 'x';
                for (let k = random(30); k > 0; k -= 1) text += alphabet[random(alphabet.length)];
                const [a, b] = [html(now.renderMarkdown, text), html(before.renderMarkdown, text)];
                if (a !== b) found.push([text, a, b]);
                for (const tag of b.match(/<(em|strong|del|code|a|br)[ >]/g) ?? []) marked.add(tag.slice(0, -1));
            }
            return [found, [...marked].sort()];
        }""",
        ALPHABET,
    )
    assert mismatches == [[], ["<a", "<br", "<code", "<del", "<em", "<strong"]]  # every kind was met


@pytest.mark.parametrize(
    "unit", ["**a ", "*a ", "__a ", "_a ", "~~a ", "`a ``b ", "[a ", "[a](", "<http://a "]
)
async def test_rendering_time_grows_linearly_with_unclosed_markup(
    serve_web: Serve, open_page: OpenPage, unit: str
) -> None:
    """100,000 characters of `**a ` took 4.9 s a render (quadratic), on every delta of an answer.

    Ten times the text must take well under a hundred times the time: at most 30 times (the
    best of three runs each, so a busy machine's pauses do not decide it).
    """
    web: WebPage = await open_page(serve_web())
    small, large = await web.page.evaluate(
        """async unit => {
            const { renderMarkdown } = await import('/web/markdown.js');
            const best = text => {
                let fastest = Infinity;
                for (let run = 0; run < 3; run += 1) {
                    const started = performance.now();
                    renderMarkdown(text);
                    fastest = Math.min(fastest, performance.now() - started);
                }
                return fastest;
            };
            const times = n => best(unit.repeat(Math.ceil(n / unit.length)));
            times(10000);  // warm the JIT
            return [times(10000), times(100000)];
        }""",
        unit,
    )
    assert large < 30 * max(small, 1.0), (unit, small, large)
