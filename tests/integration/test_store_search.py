"""Search of a user's chats, on SQLite (FTS5) and MariaDB/MySQL (FULLTEXT): the same answers on both."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta

import pytest

from store import ChatCursor, ChatStore, DatabaseURL
from store.errors import InvalidArgument
from store.records import Role, SearchHit, utcnow
from store.search import owner_key
from tests.integration.test_store_contract import chat, msg

CHATS = {
    "pt": (
        "Viagem a Lisboa",
        ["Qual é a melhor época para visitar Portugal?", "A primavera é ótima; a AÇÃO começa em março."],
    ),
    "en": (
        "Python snippets",
        ["How do I reverse a list in Python?", "Use reversed() or slicing: items[::-1]."],
    ),
    "zh": ("学习中文", ["我喜欢学习中文和日本語のテキスト", "北京是中国的首都。"]),
    "ja": ("旅行", ["東京タワーはどこですか"]),
}


@pytest.fixture
def user() -> str:
    return f"searcher-{uuid.uuid4().hex}"


async def corpus(store: ChatStore, user: str) -> dict[str, str]:
    """The chats above for `user`, created one second apart in CHATS' order; name -> chat id."""
    t0 = utcnow()
    ids = {}
    for i, (name, (title, texts)) in enumerate(CHATS.items()):
        cid = f"{user}-{name}"
        at = t0 + timedelta(seconds=i)
        messages = [msg(cid, n, Role.USER if n % 2 else Role.ASSISTANT, t) for n, t in enumerate(texts, 1)]
        await store.create_chat(chat(cid, user=user, title=title, created_at=at, updated_at=at), messages)
        ids[name] = cid
    return ids


async def found(store: ChatStore, user: str, query: str, limit: int = 50) -> list[tuple[str, int | None]]:
    return [(h.chat.id.rsplit("-", 1)[1], h.seq) for h in await store.search_chats(user, query, limit)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("acao", [("pt", 2)]),  # accents and case folded both ways
        ("AÇÃO", [("pt", 2)]),
        ("Época", [("pt", 1)]),
        ("portu", [("pt", 1)]),  # a word finds the words it begins
        ("lisboa", [("pt", None)]),  # the title alone
        ("primavera ótima", [("pt", 2)]),  # every word, in one message
        ("primavera portugal", []),  # not when they are in two messages
        ("python", [("en", 1)]),  # title and message: the newest matching message
        ("REVERSE", [("en", 2)]),
        ("the python list", [("en", 1)]),  # a stopword is left out, the rest must all be there
        ("学习中文", [("zh", 1)]),
        ("中文", [("zh", 1)]),
        ("首都", [("zh", 2)]),
        ("中国的首都", [("zh", 2)]),  # a longer run is a phrase of bigrams
        ("首都中国", []),  # the same characters out of order
        ("习中", [("zh", 1)]),  # inside a run, across a word boundary of the language
        ("京", [("ja", 1), ("zh", 2)]),  # one character; newest chat first
        ("日本語", [("zh", 1)]),
        ("東京タワー", [("ja", 1)]),
        ("タワー どこ", [("ja", 1)]),
        ("旅行", [("ja", None)]),
        ("china", []),
    ],
)
async def test_search_finds_words_and_cjk_text_alike_on_both_engines(
    store: ChatStore, user: str, query: str, expected: list[tuple[str, int | None]]
) -> None:
    await corpus(store, user)
    assert await found(store, user, query) == expected


async def test_a_hit_carries_its_chat_and_a_snippet_around_the_match(store: ChatStore, user: str) -> None:
    ids = await corpus(store, user)
    long_text = "palavra " * 60 + "O Mosteiro dos Jerónimos fica em Belém." + " fim" * 60
    await store.write(ids["pt"], 0, append=[msg(ids["pt"], 3, content=long_text, parent_seq=2)])
    [hit] = await store.search_chats(user, "jeronimos", 10)
    assert isinstance(hit, SearchHit)
    assert hit.chat == await store.get_chat(ids["pt"])
    assert hit.seq == 3
    assert "Mosteiro dos Jerónimos fica em Belém." in hit.snippet
    assert hit.snippet.startswith("…") and hit.snippet.endswith("…") and len(hit.snippet) <= 162
    [title_hit] = await store.search_chats(user, "viagem", 10)
    assert (title_hit.seq, title_hit.snippet) == (None, "Viagem a Lisboa")


@pytest.mark.parametrize("query", ["", "   ", "de", "é", "the", "a of to", "?!", "ok go", "how about"])
async def test_a_search_with_nothing_searchable_is_refused(store: ChatStore, user: str, query: str) -> None:
    with pytest.raises(InvalidArgument):
        await store.search_chats(user, query, 10)


async def test_a_page_holds_at_least_one_chat(store: ChatStore, user: str) -> None:
    for limit in (0, -1):
        with pytest.raises(InvalidArgument):
            await store.search_chats(user, "python", limit)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"', None),
        ("*", None),
        ("-", None),
        ("OR", None),
        ("NEAR(", []),  # "near": a word like any other
        (")", None),
        ("\\", None),
        ("'); DROP TABLE chats; --", []),  # "drop", "table", "chats": words like any others
        ('python"', [("en", 1)]),
        ('"python', [("en", 1)]),
        ("-python", [("en", 1)]),  # not BOOLEAN MODE's exclusion
        ("python -list", [("en", 1)]),
        ("python*", [("en", 1)]),
        ("python OR lisboa", []),  # no OR: both words are required
        ("NEAR(python list)", []),  # "near" is a word like the others
        ("(python) @3 ~list >python <list", [("en", 1)]),
        ('python" OR "x', [("en", 1)]),
        ("python\x00list", [("en", 1)]),
    ],
)
async def test_hostile_queries_are_words_or_refused(
    store: ChatStore, user: str, query: str, expected: list[tuple[str, int | None]] | None
) -> None:
    await corpus(store, user)
    if expected is None:
        with pytest.raises(InvalidArgument):
            await store.search_chats(user, query, 10)
    else:
        assert await found(store, user, query) == expected


async def test_oversized_or_broken_queries_are_refused_and_the_longest_allowed_runs(
    store: ChatStore, user: str
) -> None:
    await corpus(store, user)
    with pytest.raises(InvalidArgument):
        await store.search_chats(user, "python " * 143, 10)  # 1,001 characters
    with pytest.raises(InvalidArgument):
        await store.search_chats(user, "python \ud800", 10)  # a lone surrogate
    hostile = ('python "*-)(\\ OR ' * 20)[:256]
    assert await found(store, user, hostile) == [("en", 1)]
    assert await found(store, user, "中文" * 128) == []  # a 255-bigram phrase


async def test_a_user_finds_only_their_own_chats(store: ChatStore, user: str) -> None:
    await corpus(store, user)
    await corpus(store, user + "-x")  # another user with the same chats
    await store.create_chat(chat(f"{user} -pad", user=user + " ", title="Python padded"), [])
    assert await found(store, user, "python") == [("en", 1)]
    assert [h.chat.user_id for h in await store.search_chats(user + " ", "python", 10)] == [user + " "]
    assert await store.search_chats(user.upper(), "python", 10) == []


async def test_no_query_word_matches_every_chat_of_its_user(store: ChatStore, user: str) -> None:
    # Every document holds its owner's token; a word that began it would find them all.
    await corpus(store, user)
    token = owner_key(user)
    for n in (3, 5, len(token)):
        with pytest.raises(InvalidArgument):
            await store.search_chats(user, token[:n], 10)
    assert await found(store, user, f"{token} python") == [("en", 1)]


async def test_search_pages_newest_first(store: ChatStore, user: str) -> None:
    t0 = utcnow()
    ids = [f"{user}-{i}" for i in range(5)]
    for i, cid in enumerate(ids):
        at = t0 + timedelta(seconds=i // 2)  # pairs share a timestamp: the id breaks the tie
        await store.create_chat(
            chat(cid, user=user, created_at=at, updated_at=at), [msg(cid, 1, content="kayak trip")]
        )
    pages, after = [], None
    while page := await store.search_chats(user, "kayak", 2, after):
        pages.append([h.chat.id for h in page])
        after = ChatCursor(page[-1].chat.created_at, page[-1].chat.id)
    assert pages == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]


async def test_every_branch_and_erased_messages_are_searched(store: ChatStore, user: str) -> None:
    ids = await corpus(store, user)
    cid = ids["en"]
    # A regenerated answer beside message 2 (the active leaf moves to it), then message 2 erased.
    await store.write(
        cid, 0, append=[msg(cid, 3, Role.ASSISTANT, "Try list.reverse() in place.", parent_seq=1)]
    )
    await store.write(cid, 1, erase=[1, 2])
    assert await found(store, user, "slicing") == [("en", 2)]  # off the active path
    assert await found(store, user, "reverse") == [("en", 3)]


async def test_renamed_deleted_and_replaced_chats_are_found_as_they_are_now(
    store: ChatStore, user: str
) -> None:
    ids = await corpus(store, user)
    await store.write(ids["zh"], 0, rename="Chinese lessons 汉语课")
    assert await found(store, user, "学习中文") == [("zh", 1)]  # still in a message
    assert await found(store, user, "lessons") == [("zh", None)]
    assert await found(store, user, "汉语") == [("zh", None)]
    await store.write(ids["pt"], 0, rename="Férias")
    assert await found(store, user, "lisboa") == []
    assert await store.delete_chat(ids["en"])
    assert await found(store, user, "python") == []
    # A new chat under the same id reuses nothing of the deleted one's search entries.
    await store.create_chat(
        chat(ids["en"], user=user, title="Ruby"), [msg(ids["en"], 1, content="Ruby blocks")]
    )
    assert await found(store, user, "python") == []
    assert await found(store, user, "ruby") == [("en", 1)]


async def test_sqlite_search_survives_vacuum(sqlite_url: DatabaseURL, user: str) -> None:
    # The FTS5 tables point at messages by rowid; VACUUM may renumber the rowids of tables without
    # an INTEGER PRIMARY KEY, which would make the index point at the wrong rows.
    from store import open_store

    store = open_store(sqlite_url)
    try:
        ids = await corpus(store, user)
        await store.delete_chat(ids["pt"])
        conn = sqlite3.connect(sqlite_url.path)
        conn.execute("VACUUM")
        conn.close()
        assert await found(store, user, "python") == [("en", 1)]
        assert await found(store, user, "中文") == [("zh", 1)]
        assert await found(store, user, "lisboa") == []
    finally:
        await store.close()
