"""The search text rules alone: query terms, CJK bigrams, MATCH expressions, snippets."""

from __future__ import annotations

import re

import pytest

from store.errors import InvalidArgument
from store.search import (
    MAX_QUERY_CHARS,
    SNIPPET_CHARS,
    Term,
    boolean_query,
    fts5_query,
    grams,
    keys,
    owner_key,
    snippet,
    terms,
)


def texts(query: str) -> list[tuple[str, bool]]:
    return [(t.text, t.cjk) for t in terms(query)]


def test_words_are_lowered_normalised_and_kept_once() -> None:
    assert texts("Ação AÇÃO ação") == [("ação", False)]
    assert texts("ＰＹＴＨＯＮ ﬁnal") == [("python", False), ("final", False)]  # NFKC: full width, ligatures
    assert texts("snake_case 2024 x1y") == [("snake_case", False), ("2024", False), ("x1y", False)]


def test_short_words_and_stopwords_are_left_out() -> None:
    assert texts("go to the Paris of 42") == [("paris", False)]
    assert texts("about que com para") == [("que", False), ("para", False)]


def test_cjk_runs_are_cut_out_of_words() -> None:
    assert texts("iPhone15手机 学习中文") == [("iphone15", False), ("手机", True), ("学习中文", True)]
    assert texts("東京タワーはどこですか") == [("東京タワーはどこですか", True)]
    assert texts("中 文") == [("中", True), ("文", True)]


def test_a_long_cjk_run_is_searched_as_overlapping_pieces() -> None:
    run = "".join(chr(0x4E00 + i) for i in range(200))
    pieces = [t.text for t in terms(run)]
    assert [len(p) for p in pieces] == [129, 72]
    assert pieces[0][-1] == pieces[1][0]  # every pair of neighbours is inside one piece
    assert all(len(t.bigrams) <= 128 for t in terms(run))


def test_a_word_longer_than_innodb_indexes_is_cut_to_its_limit() -> None:
    assert texts("x" * 200) == [("x" * 84, False)]


@pytest.mark.parametrize("query", ["", " ", "de la", "the", "?!*\"'", "a" * 2, "OR", "\x00"])
def test_nothing_searchable_is_refused(query: str) -> None:
    with pytest.raises(InvalidArgument, match="at least 3"):
        terms(query)


def test_oversized_and_broken_text_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="at most"):
        terms("a" * (MAX_QUERY_CHARS + 1))
    with pytest.raises(InvalidArgument, match="Unicode"):
        terms("python \udc80")
    assert texts("p" * MAX_QUERY_CHARS) == [("p" * 84, False)]


def test_the_keys_hold_the_owners_token_then_the_grams() -> None:
    token = owner_key("alice")
    assert re.fullmatch(r"_o_[0-9a-f]{16}", token)
    assert {owner_key("alice "), owner_key("Alice"), owner_key("bob")}.isdisjoint({token})
    assert keys("plain text", "alice") == token
    assert keys("学习", "alice") == token + "\n学习_ 习__"


def test_no_query_word_begins_an_owners_token() -> None:
    token = owner_key("alice")
    with pytest.raises(InvalidArgument):
        terms(token[:5])
    assert texts(f"{token} python _o_x __init__") == [("python", False), ("__init__", False)]


def test_grams_spell_each_cjk_run_as_padded_bigrams() -> None:
    assert grams("no CJK here") is None
    assert grams("学习中文") == "学习_ 习中_ 中文_ 文__"
    assert grams("中, then 文。日本") == "中__\n文__\n日本_ 本__"
    assert grams("ｶﾀｶﾅ") == "カタ_ タカ_ カナ_ ナ__"  # half-width kana normalised


HOSTILE = ['"', "*", "-", "OR", "NEAR(", ")", "\\", "'); DROP TABLE chats; --", '" OR 1=1 --', "+x* -y ~z"]


@pytest.mark.parametrize("query", [f"{h} python {h}中文{h}学习中文" for h in HOSTILE])
def test_match_expressions_hold_only_quoted_or_plain_word_terms(query: str) -> None:
    found = terms(query)
    mysql = boolean_query(found, "u1").split(" +")
    assert mysql[0] == "+" + owner_key("u1")
    assert all(re.fullmatch(r'(\w+\*|"[\w ]+")', part) for part in mysql[1:]), mysql
    fts = fts5_query(found, "u1").split(" AND ")
    assert fts[0] == f'"{owner_key("u1")}"'
    assert all(re.fullmatch(r'"[\w ]+"\*?', part) for part in fts[1:]), fts


def test_match_expressions_say_prefix_for_words_and_phrase_for_long_runs() -> None:
    found = [Term("café", False), Term("中文", True), Term("学习中文", True)]
    owner = owner_key("u1")
    assert boolean_query(found, "u1") == f'+{owner} +café* +中文* +"学习_ 习中_ 中文_"'
    assert fts5_query(found, "u1") == f'"{owner}" AND "café"* AND "中文"* AND "学习_ 习中_ 中文_"'


def test_a_snippet_is_one_line_around_the_first_match_on_word_edges() -> None:
    text = "intro " * 50 + "A  Ação\ncomeçou\tem março. " + "fim " * 50
    cut = snippet(text, terms("acao"))
    assert cut.startswith("…intro") and cut.endswith("…")
    assert "A Ação começou em março." in cut
    assert len(cut) <= SNIPPET_CHARS + 2
    assert not re.search(r"\bntro|\bim…", cut)  # no word cut in half at either end


def test_a_snippet_finds_words_at_their_start_and_cjk_anywhere() -> None:
    assert snippet("reversed items", terms("versed")) == "reversed items"  # no match: the start
    long = "x" * 500 + "北京是中国的首都" + "y" * 500
    cut = snippet(long, terms("首都"))
    assert "中国的首都" in cut and cut.startswith("…") and cut.endswith("…")


def test_a_short_text_is_its_own_snippet() -> None:
    assert snippet("Viagem a\n Lisboa", terms("lisboa")) == "Viagem a Lisboa"
    assert snippet("", terms("lisboa")) == ""
