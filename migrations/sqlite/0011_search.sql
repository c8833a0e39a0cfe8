-- Search (DESIGN.md §7): what people write (accident descriptions, maintenance notes, follow-up
-- notes, notices), segmented by jieba in the application and indexed here, and each company's
-- own synonym groups.

-- One searchable record. `id` is the record's own id (ids are UUID v7, unique across tables), so
-- indexing an edited record again replaces its row. `tokens` are the words jieba found, joined
-- by spaces, which FTS5's unicode61 tokenizer splits again at the spaces (a run of Chinese
-- characters is one token to it). Who may see a row is kept here, copied from the record, so the
-- search filters inside its one query. `seq` is the row's FTS5 rowid: an alias of the rowid, so
-- that VACUUM never renumbers it under the full-text index.
create table search_doc (
    seq integer primary key,
    id text not null,
    tenant_id text not null references tenant (id),
    kind text not null check (kind in ('ACCIDENT', 'MAINTENANCE', 'FOLLOW_UP', 'NOTICE')),
    -- None: the whole company may see it (a company-wide notice), unless `restricted`.
    branch_id text,
    -- Who filed it; they always find it.
    owner_id text,
    -- Only operators, the owner and the users in search_doc_reader find it (a notice to named
    -- users).
    restricted boolean not null default false,
    title text not null,
    body text not null,
    tokens text not null,
    created_at text not null,
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint search_doc_id_key unique (id)
);
create index search_doc_recent_idx on search_doc (tenant_id, created_at);

-- The full-text index over search_doc.tokens (external content: the text stays in search_doc),
-- kept in step by the triggers below, so every write to search_doc updates it in the same
-- transaction.
create virtual table search_doc_fts using fts5(
    tokens,
    content = 'search_doc',
    content_rowid = 'seq',
    tokenize = 'unicode61'
);

create trigger search_doc_fts_insert after insert on search_doc begin
    insert into search_doc_fts (rowid, tokens) values (new.seq, new.tokens);
end;

create trigger search_doc_fts_delete after delete on search_doc begin
    insert into search_doc_fts (search_doc_fts, rowid, tokens) values ('delete', old.seq, old.tokens);
end;

create trigger search_doc_fts_update after update of tokens on search_doc begin
    insert into search_doc_fts (search_doc_fts, rowid, tokens) values ('delete', old.seq, old.tokens);
    insert into search_doc_fts (rowid, tokens) values (new.seq, new.tokens);
end;

-- The people a restricted record is addressed to.
create table search_doc_reader (
    doc_id text not null references search_doc (id) on delete cascade,
    user_id text not null,
    constraint search_doc_reader_pkey primary key (doc_id, user_id)
);
create index search_doc_reader_user_idx on search_doc_reader (user_id);

-- A company's own synonym groups, kept by its operators; the built-in groups ship with the code.
-- `terms` is a JSON array of 2 to 20 distinct strings.
create table search_synonym_group (
    id text primary key,
    tenant_id text not null references tenant (id),
    terms text not null,
    updated_by text references app_user (id),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now'))
);
create index search_synonym_group_tenant_idx on search_synonym_group (tenant_id, created_at);
