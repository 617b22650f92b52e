-- Chats and their messages; timestamps are ISO-8601 text in UTC, which sorts like time.
CREATE TABLE IF NOT EXISTS chats (
    id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL,
    context_tokens INTEGER NOT NULL,
    max_tokens INTEGER NOT NULL,
    temperature REAL,
    top_p REAL,
    n INTEGER NOT NULL DEFAULT 1,
    stop_json TEXT NOT NULL,
    presence_penalty REAL,
    frequency_penalty REAL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS ix_chats_user_created ON chats (user_id, created_at, id);

CREATE TABLE IF NOT EXISTS messages (
    chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    turn_id TEXT,
    status TEXT NOT NULL,
    finish_reason TEXT,
    erased INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    PRIMARY KEY (chat_id, seq)
);

CREATE INDEX IF NOT EXISTS ix_messages_window ON messages (chat_id, erased, seq);
