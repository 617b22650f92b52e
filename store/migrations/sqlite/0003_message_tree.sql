-- The message tree: each message follows a parent (NULL for a chat's first message), each chat
-- shows the path ending at its active leaf. Existing chats become one chain each: every message
-- follows the previous seq (erased ones included) and the last one is the active leaf.
ALTER TABLE chats ADD COLUMN active_leaf INTEGER;
ALTER TABLE chats ADD COLUMN title_grams TEXT;
ALTER TABLE messages ADD COLUMN parent_seq INTEGER;
ALTER TABLE messages ADD COLUMN content_grams TEXT;

UPDATE messages SET parent_seq = (
    SELECT MAX(p.seq) FROM messages p WHERE p.chat_id = messages.chat_id AND p.seq < messages.seq
);

UPDATE chats SET active_leaf = (SELECT MAX(m.seq) FROM messages m WHERE m.chat_id = chats.id);

CREATE INDEX ix_messages_children ON messages (chat_id, parent_seq, seq);

-- Search: external-content FTS5 tables over the text and its grams (store/search.py writes them:
-- Chinese/Japanese runs as bigrams), kept in step by triggers. unicode61 folds case and removes
-- diacritics; "_" is a word character, as it is for InnoDB's parser.
CREATE VIRTUAL TABLE chats_fts USING fts5(
    title, title_grams, content = 'chats', tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);

CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content_grams, content = 'messages', tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);

CREATE TRIGGER chats_fts_insert AFTER INSERT ON chats BEGIN
    INSERT INTO chats_fts (rowid, title, title_grams) VALUES (new.rowid, new.title, new.title_grams);
END;

CREATE TRIGGER chats_fts_delete AFTER DELETE ON chats BEGIN
    INSERT INTO chats_fts (chats_fts, rowid, title, title_grams)
        VALUES ('delete', old.rowid, old.title, old.title_grams);
END;

CREATE TRIGGER chats_fts_update AFTER UPDATE OF title, title_grams ON chats BEGIN
    INSERT INTO chats_fts (chats_fts, rowid, title, title_grams)
        VALUES ('delete', old.rowid, old.title, old.title_grams);
    INSERT INTO chats_fts (rowid, title, title_grams) VALUES (new.rowid, new.title, new.title_grams);
END;

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content, content_grams) VALUES (new.rowid, new.content, new.content_grams);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content, content_grams)
        VALUES ('delete', old.rowid, old.content, old.content_grams);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, content_grams ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content, content_grams)
        VALUES ('delete', old.rowid, old.content, old.content_grams);
    INSERT INTO messages_fts (rowid, content, content_grams) VALUES (new.rowid, new.content, new.content_grams);
END;

INSERT INTO chats_fts (chats_fts) VALUES ('rebuild');
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
