-- Chats and their messages. utf8mb4 throughout (emoji); ids compare byte for byte.
CREATE TABLE IF NOT EXISTS chats (
    id VARCHAR(128) NOT NULL,
    user_id VARCHAR(128) NOT NULL,
    status VARCHAR(16) NOT NULL,
    title VARCHAR(200) NOT NULL DEFAULT '',
    model VARCHAR(128) NOT NULL,
    context_tokens INT UNSIGNED NOT NULL,
    max_tokens INT UNSIGNED NOT NULL,
    temperature DOUBLE NULL,
    top_p DOUBLE NULL,
    n SMALLINT UNSIGNED NOT NULL DEFAULT 1,
    stop_json TEXT NOT NULL,
    presence_penalty DOUBLE NULL,
    frequency_penalty DOUBLE NULL,
    version BIGINT UNSIGNED NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    KEY ix_chats_user_created (user_id, created_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS messages (
    chat_id VARCHAR(128) NOT NULL,
    seq INT UNSIGNED NOT NULL,
    role VARCHAR(16) NOT NULL,
    content MEDIUMTEXT NOT NULL,
    tokens INT UNSIGNED NOT NULL,
    turn_id VARCHAR(64) NULL,
    status VARCHAR(16) NOT NULL,
    finish_reason VARCHAR(32) NULL,
    erased TINYINT(1) NOT NULL DEFAULT 0,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (chat_id, seq),
    KEY ix_messages_window (chat_id, erased, seq),
    CONSTRAINT fk_messages_chat FOREIGN KEY (chat_id) REFERENCES chats (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
