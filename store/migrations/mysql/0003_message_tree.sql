-- The message tree: each message follows a parent (NULL for a chat's first message), each chat
-- shows the path ending at its active leaf. Existing chats become one chain each: every message
-- follows the previous seq (erased ones included) and the last one is the active leaf.
--
-- Search: one FULLTEXT index per table over the text and its grams (store/search.py writes them:
-- Chinese/Japanese runs as bigrams, which the built-in parser cannot segment). The text columns
-- take an accent- and case-insensitive collation, which is what FULLTEXT matches words with;
-- nothing else compares them. InnoDB's default stopwords and minimum word length (3) apply.
ALTER TABLE chats
    ADD COLUMN active_leaf INT UNSIGNED NULL,
    MODIFY title VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL DEFAULT '',
    ADD COLUMN title_grams TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL;

ALTER TABLE messages
    ADD COLUMN parent_seq INT UNSIGNED NULL,
    MODIFY content MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
    ADD COLUMN content_grams MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL,
    ADD KEY ix_messages_children (chat_id, parent_seq, seq);

UPDATE messages m
    JOIN (SELECT chat_id, seq, LAG(seq) OVER (PARTITION BY chat_id ORDER BY seq) AS previous FROM messages) p
        ON p.chat_id = m.chat_id AND p.seq = m.seq
    SET m.parent_seq = p.previous;

UPDATE chats c SET c.active_leaf = (SELECT MAX(m.seq) FROM messages m WHERE m.chat_id = c.id);

ALTER TABLE chats ADD FULLTEXT KEY ft_chats_title (title, title_grams);

ALTER TABLE messages ADD FULLTEXT KEY ft_messages_content (content, content_grams);
