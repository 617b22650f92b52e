-- The message tree: each message follows a parent (NULL for a chat's first message), each chat
-- shows the path ending at its active leaf. Existing chats become one chain each: every message
-- follows the previous seq (erased ones included) and the last one is the active leaf.
-- The *_keys columns hold what the search index keeps beside the text (store/search.py); the
-- migration runner fills them for existing rows after this file (store/backfill.py).
ALTER TABLE chats ADD COLUMN active_leaf INTEGER;
ALTER TABLE chats ADD COLUMN title_keys TEXT;
ALTER TABLE messages ADD COLUMN parent_seq INTEGER;
ALTER TABLE messages ADD COLUMN content_keys TEXT;

UPDATE messages SET parent_seq = (
    SELECT MAX(p.seq) FROM messages p WHERE p.chat_id = messages.chat_id AND p.seq < messages.seq
);

UPDATE chats SET active_leaf = (SELECT MAX(m.seq) FROM messages m WHERE m.chat_id = chats.id);

CREATE INDEX ix_messages_children ON messages (chat_id, parent_seq, seq);
