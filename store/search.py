"""Search text rules, pure: query words, the index's keys, MATCH expressions, snippets.

Both databases index two columns per document (a chat's title, a message's content): the text
itself, which their word tokenizers fold for case and accents, and its keys: the owner's token,
then every run of Chinese/Japanese characters spelled as overlapping bigrams padded to three
characters ("中文_"), because neither tokenizer segments scripts written without spaces and InnoDB
indexes no token under three characters. Every query requires the owner's token, so the engine
narrows to one user's documents inside the index (InnoDB would otherwise fetch every user's
matching rows before the owner is compared). A query is cut here into the same units, so that both
engines answer alike: a word matches the words it begins (at least 3 characters, not an InnoDB
stopword); a run of CJK characters matches where those characters occur in that order.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from store.errors import InvalidArgument

MAX_QUERY_CHARS = 256
MIN_WORD_CHARS = 3  # InnoDB's default innodb_ft_min_token_size: shorter words are not indexed
MAX_WORD_CHARS = 84  # InnoDB's default innodb_ft_max_token_size: longer words are not indexed
MAX_PHRASE_CHARS = 129  # InnoDB refuses a phrase of more than 128 words (bigrams, here)
SNIPPET_CHARS = 160
OWNER_PREFIX = "_o_"  # begins every owner's token; a query word beginning so is left out
_SNIPPET_LEAD = 40  # characters of context kept before the match

# InnoDB's default stopword list: not indexed by MariaDB/MySQL, so never searched on either engine.
STOPWORDS = frozenset(
    "a about an are as at be by com de en for from how i in is it la of on or that the this to "  # noqa: SIM905
    "was what when where who will with und www".split()
)

# Han (with extensions and compatibility forms), kana, and the iteration marks 々〆〇.
_CJK = (
    "\u3005-\u3007\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\U00020000-\U0003134f"
)
_CJK_RUN = re.compile(f"[{_CJK}]+")
_WORD = re.compile(r"\w+")  # letters, digits and "_", as both engines' tokenizers see words


@dataclass(frozen=True, slots=True)
class Term:
    """One unit of a query: a word prefix, or a run of CJK characters."""

    text: str
    cjk: bool

    @property
    def bigrams(self) -> list[str]:
        return [self.text[i : i + 2] + "_" for i in range(len(self.text) - 1)]


def owner_key(user_id: str) -> str:
    """The owner's token in the index: a word no other user's documents hold and no query word begins."""
    return OWNER_PREFIX + hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def keys(text: str, user_id: str) -> str:
    """What the keys column of a document by `user_id` holds: the owner's token, then the bigrams."""
    found = grams(text)
    return owner_key(user_id) + ("\n" + found if found else "")


def grams(text: str) -> str | None:
    """The bigrams of every CJK run in `text` (None when it has no CJK)."""
    runs = _CJK_RUN.findall(unicodedata.normalize("NFKC", text))
    if not runs:
        return None
    # Each run ends on its last character padded ("文__"): a query's phrase of whole bigrams
    # can then never continue from one run into the next.
    return "\n".join(" ".join([*Term(run, cjk=True).bigrams, run[-1] + "__"]) for run in runs)


def terms(query: str) -> list[Term]:
    """The units a query searches for, all of which a document must hold; InvalidArgument if none."""
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidArgument(f"a search is at most {MAX_QUERY_CHARS} characters, got {len(query)}")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument("the search is not valid Unicode text") from None
    found: dict[Term, None] = {}
    for word in _WORD.findall(unicodedata.normalize("NFKC", query).lower()):
        at = 0
        for run in _CJK_RUN.finditer(word):
            _add_word(found, word[at : run.start()])
            # A longer run is searched as overlapping pieces, each a phrase InnoDB accepts.
            text = run.group()
            for start in range(0, max(len(text) - 1, 1), MAX_PHRASE_CHARS - 1):
                found[Term(text[start : start + MAX_PHRASE_CHARS], cjk=True)] = None
            at = run.end()
        _add_word(found, word[at:])
    if not found:
        raise InvalidArgument(
            f"search for a word of at least {MIN_WORD_CHARS} letters or digits (common words such as "
            "'the' are not indexed), or for Chinese or Japanese characters"
        )
    return list(found)


def _add_word(found: dict[Term, None], word: str) -> None:
    # A word is searched as a prefix: one that began an owner's token would find all their documents.
    if len(word) >= MIN_WORD_CHARS and word not in STOPWORDS and not word.startswith(OWNER_PREFIX):
        found[Term(word[:MAX_WORD_CHARS], cjk=False)] = None


def boolean_query(found: list[Term], user_id: str) -> str:
    """The terms as MySQL/MariaDB BOOLEAN MODE syntax: the owner's token and every term required."""
    parts = (f'+"{" ".join(t.bigrams)}"' if _phrase(t) else f"+{t.text}*" for t in found)
    return " ".join([f"+{owner_key(user_id)}", *parts])


def fts5_query(found: list[Term], user_id: str) -> str:
    """The terms as an SQLite FTS5 MATCH expression: the owner's token and every term, each quoted."""
    parts = (_quoted(" ".join(t.bigrams)) if _phrase(t) else _quoted(t.text) + "*" for t in found)
    return " AND ".join([_quoted(owner_key(user_id)), *parts])


def _phrase(term: Term) -> bool:
    # One or two CJK characters are found as the start of a bigram; more as a phrase of bigrams.
    return term.cjk and len(term.text) > 2


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def snippet(content: str, found: list[Term]) -> str:
    """A short, one-line extract of `content` around the first place a term matches."""
    folded = _fold(content)
    starts = [m.start() for m in (_locate(folded, t) for t in found) if m is not None]
    at = min(starts, default=0)
    begin = max(0, at - _SNIPPET_LEAD)
    end = min(len(content), begin + SNIPPET_CHARS)
    begin = max(0, end - SNIPPET_CHARS)
    if begin and not content[begin - 1].isspace():  # start on a whole word when one starts soon
        first = re.search(r"\s", content[begin:at])
        begin += first.end() if first else 0
    if end < len(content) and not content[end].isspace():  # and end on one
        last = max((m.start() for m in re.finditer(r"\s", content[at:end])), default=0)
        end = at + last if last else end
    text = " ".join(content[begin:end].split())
    return ("…" if begin else "") + text + ("…" if end < len(content) else "")


def _locate(folded: str, term: Term) -> re.Match[str] | None:
    needle = re.escape(_fold(term.text))
    return re.search(needle if term.cjk else rf"(?<!\w){needle}", folded)


def _fold(text: str) -> str:
    """Lower case without accents, one character for one, so positions map back to `text`."""
    table = {ord(c): _fold_char(c) for c in set(text) if not c.isascii() or c.isupper()}
    return text.translate(table)


def _fold_char(c: str) -> str:
    bare = "".join(d for d in unicodedata.normalize("NFKD", c) if not unicodedata.combining(d))
    lowered = bare.lower()
    return lowered[0] if len(lowered) >= 1 else c
