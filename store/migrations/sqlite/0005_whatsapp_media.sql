-- WhatsApp media and delivery status (see the MySQL file of this number for what each row means).
CREATE TABLE IF NOT EXISTS media (
    id TEXT NOT NULL PRIMARY KEY,
    chat_id TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    turn_id TEXT NOT NULL,
    seq INTEGER,
    kind TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    data BLOB,
    transcript TEXT,
    width INTEGER,
    height INTEGER,
    tokens INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS ix_media_message ON media (chat_id, seq);
CREATE INDEX IF NOT EXISTS ix_media_turn ON media (chat_id, turn_id);

CREATE TABLE IF NOT EXISTS outbound_messages (
    sid TEXT NOT NULL PRIMARY KEY,
    chat_id TEXT,
    reply_to TEXT,
    part INTEGER,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    error_code INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS ix_outbound_chat ON outbound_messages (chat_id, reply_to, part);
CREATE INDEX IF NOT EXISTS ix_webhook_events_source ON webhook_events (source, created_at);
