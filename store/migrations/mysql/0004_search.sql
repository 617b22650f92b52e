-- Search: one FULLTEXT index per table over the text and its keys (the owner's token and the
-- Chinese/Japanese bigrams, store/search.py). The text columns take an accent- and
-- case-insensitive collation, which is what FULLTEXT matches words with; nothing else compares
-- them. InnoDB's default stopwords and word lengths (3 to 84) apply.
ALTER TABLE chats
    MODIFY title VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL DEFAULT '',
    ADD FULLTEXT KEY ft_chats_title (title, title_keys);

ALTER TABLE messages
    MODIFY content MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
    ADD FULLTEXT KEY ft_messages_content (content, content_keys);
