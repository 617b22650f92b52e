-- WhatsApp media and delivery status.
-- media: what a user message carried. An image keeps its bytes (the prompt of every later turn
-- shows it again); a voice note keeps only its transcript (the message's text) and its type. A row
-- is written before its turn begins (turn_id) and attached to the stored message (seq) after; it
-- counts as the message's only while that message has the same turn_id, so a seq taken again
-- after a withdrawn turn never shows another turn's image.
CREATE TABLE IF NOT EXISTS media (
    id VARCHAR(64) NOT NULL,
    chat_id VARCHAR(128) NOT NULL,
    turn_id VARCHAR(64) NOT NULL,
    seq INT UNSIGNED NULL,
    kind VARCHAR(16) NOT NULL,
    content_type VARCHAR(128) NOT NULL,
    size_bytes INT UNSIGNED NOT NULL,
    data MEDIUMBLOB NULL,
    transcript MEDIUMTEXT NULL,
    width INT UNSIGNED NULL,
    height INT UNSIGNED NULL,
    tokens INT UNSIGNED NOT NULL DEFAULT 0,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    KEY ix_media_message (chat_id, seq),
    KEY ix_media_turn (chat_id, turn_id),
    CONSTRAINT fk_media_chat FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- outbound_messages: every message part the service sent through Twilio's REST API, by Twilio's
-- SID (or `local:...` for a part that was never handed to Twilio), and its latest delivery status.
-- chat_id is NULL for a status callback that arrived before the send that created it was recorded.
CREATE TABLE IF NOT EXISTS outbound_messages (
    sid VARCHAR(64) NOT NULL,
    chat_id VARCHAR(128) NULL,
    reply_to VARCHAR(64) NULL,
    part SMALLINT UNSIGNED NULL,
    kind VARCHAR(16) NOT NULL,
    status VARCHAR(16) NOT NULL,
    error_code INT UNSIGNED NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (sid),
    KEY ix_outbound_chat (chat_id, reply_to, part)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The 24-hour window closes a day after the sender's last inbound message.
ALTER TABLE webhook_events ADD KEY ix_webhook_events_source (source, created_at);
