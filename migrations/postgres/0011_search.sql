-- Search (DESIGN.md §7): what people write (accident descriptions, maintenance notes, follow-up
-- notes, notices), segmented by jieba in the application and indexed here, and each company's
-- own synonym groups.

-- One searchable record. `id` is the record's own id (ids are UUID v7, unique across tables), so
-- indexing an edited record again replaces its row. `tokens` are the words jieba found, joined
-- by spaces: the `simple` configuration only lower-cases and splits them again at the spaces,
-- so Chinese text needs no parser of its own in the database. Who may see a row is kept here,
-- copied from the record, so the search filters inside its statements.
--
-- `tsv` also holds lexemes no query word can be ('#' never survives the parser): the record's
-- month (UTC, '#m202611'), its kind ('#kNOTICE'), who may see it ('#all' for the whole company,
-- '#b<branch id>', none when restricted) and its owner ('#o<user id>'). A search for a rarer
-- word asks the GIN index for it together with a few months and what the viewer may see, so
-- PostgreSQL reads only those rows, never every match of the word (resolvers/src/search.rs).
create table search_doc (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    kind text not null check (kind in ('ACCIDENT', 'MAINTENANCE', 'FOLLOW_UP', 'NOTICE')),
    -- None: the whole company may see it (a company-wide notice), unless `restricted`.
    branch_id uuid,
    -- Who filed it; they always find it.
    owner_id uuid,
    -- Only operators, the owner and the users in search_doc_reader find it (a notice to named
    -- users).
    restricted boolean not null default false,
    title text not null,
    body text not null,
    tokens text not null,
    tsv tsvector generated always as (
        to_tsvector('simple', tokens)
        || array_to_tsvector(array_remove(array[
            '#m' || (extract(year from created_at at time zone 'UTC') * 100
                + extract(month from created_at at time zone 'UTC'))::int::text,
            '#k' || kind,
            case when restricted then null
                 when branch_id is null then '#all'
                 else '#b' || branch_id::text end,
            '#o' || owner_id::text
        ], null))
    ) stored,
    created_at timestamptz not null,
    updated_at timestamptz not null default now()
);
create index search_doc_tsv_idx on search_doc using gin (tsv);
-- The search ranks only the most recent matches: it walks this index newest first, testing
-- each row against the query, and stops at the cap; months further back go through the GIN.
create index search_doc_recent_idx on search_doc (tenant_id, created_at desc);
-- The same walk for staff, over only what they may see: their branch's rows (and the company's
-- with no branch), and what they filed.
create index search_doc_branch_idx on search_doc (tenant_id, branch_id, created_at desc);
create index search_doc_owner_idx on search_doc (owner_id, created_at desc);

-- The people a restricted record is addressed to.
create table search_doc_reader (
    doc_id uuid not null references search_doc (id) on delete cascade,
    user_id uuid not null,
    constraint search_doc_reader_pkey primary key (doc_id, user_id)
);
create index search_doc_reader_user_idx on search_doc_reader (user_id);

-- A company's own synonym groups, kept by its operators; the built-in groups ship with the code.
-- `terms` is a JSON array of 2 to 20 distinct strings.
create table search_synonym_group (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    terms jsonb not null,
    updated_by uuid references app_user (id),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index search_synonym_group_tenant_idx on search_synonym_group (tenant_id, created_at);
