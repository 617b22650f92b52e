-- The message tree: each message follows a parent (NULL for a chat's first message), each chat
-- shows the path ending at its active leaf. Existing chats become one chain each: every message
-- follows the previous seq (erased ones included) and the last one is the active leaf.
-- The *_keys columns hold what the search index keeps beside the text (store/search.py); the
-- migration runner fills them for existing rows after this file (store/backfill.py).
ALTER TABLE chats
    ADD COLUMN active_leaf INT UNSIGNED NULL,
    ADD COLUMN title_keys TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL;

ALTER TABLE messages
    ADD COLUMN parent_seq INT UNSIGNED NULL,
    ADD COLUMN content_keys MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL,
    ADD KEY ix_messages_children (chat_id, parent_seq, seq);

UPDATE messages m
    JOIN (SELECT chat_id, seq, LAG(seq) OVER (PARTITION BY chat_id ORDER BY seq) AS previous FROM messages) p
        ON p.chat_id = m.chat_id AND p.seq = m.seq
    SET m.parent_seq = p.previous;

UPDATE chats c SET c.active_leaf = (SELECT MAX(m.seq) FROM messages m WHERE m.chat_id = c.id);
