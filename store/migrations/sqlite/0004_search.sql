-- Search: external-content FTS5 tables over the text and its keys (the owner's token and the
-- Chinese/Japanese bigrams, store/search.py), kept in step by triggers. unicode61 folds case and
-- removes diacritics; "_" is a word character, as it is for InnoDB's parser.
CREATE VIRTUAL TABLE chats_fts USING fts5(
    title, title_keys, content = 'chats', tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);

CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content_keys, content = 'messages', tokenize = "unicode61 remove_diacritics 2 tokenchars '_'"
);

CREATE TRIGGER chats_fts_insert AFTER INSERT ON chats BEGIN
    INSERT INTO chats_fts (rowid, title, title_keys) VALUES (new.rowid, new.title, new.title_keys);
END;

CREATE TRIGGER chats_fts_delete AFTER DELETE ON chats BEGIN
    INSERT INTO chats_fts (chats_fts, rowid, title, title_keys)
        VALUES ('delete', old.rowid, old.title, old.title_keys);
END;

CREATE TRIGGER chats_fts_update AFTER UPDATE OF title, title_keys ON chats BEGIN
    INSERT INTO chats_fts (chats_fts, rowid, title, title_keys)
        VALUES ('delete', old.rowid, old.title, old.title_keys);
    INSERT INTO chats_fts (rowid, title, title_keys) VALUES (new.rowid, new.title, new.title_keys);
END;

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, content, content_keys) VALUES (new.rowid, new.content, new.content_keys);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content, content_keys)
        VALUES ('delete', old.rowid, old.content, old.content_keys);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, content_keys ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, content, content_keys)
        VALUES ('delete', old.rowid, old.content, old.content_keys);
    INSERT INTO messages_fts (rowid, content, content_keys) VALUES (new.rowid, new.content, new.content_keys);
END;

INSERT INTO chats_fts (chats_fts) VALUES ('rebuild');
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
