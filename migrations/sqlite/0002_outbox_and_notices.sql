-- Events. A change writes its event here in its own transaction. The dispatcher gives committed
-- rows their event id (seq, strictly increasing, in the order they became visible) and publishes
-- them. The table is also the replay log a reconnecting subscriber resumes from.
create table outbox_event (
    id text primary key,
    tenant_id text not null references tenant (id),
    topic text not null,
    kind text not null,
    payload text not null,
    seq bigint,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    published_at text,
    constraint outbox_event_seq_key unique (seq)
);
create index outbox_event_pending_idx on outbox_event (created_at) where seq is null;
create index outbox_event_unsent_idx on outbox_event (seq) where seq is not null and published_at is null;
create index outbox_event_topic_idx on outbox_event (topic, seq);

-- Notices operators publish to a whole company, a branch or named users.
create table notice (
    id text primary key,
    tenant_id text not null references tenant (id),
    audience text not null check (audience in ('tenant', 'branch', 'users')),
    branch_id text references branch (id),
    title text not null,
    body text not null,
    link text,
    created_by text references app_user (id),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now'))
);
create index notice_tenant_idx on notice (tenant_id, created_at);

create table notice_recipient (
    notice_id text not null references notice (id),
    user_id text not null references app_user (id),
    primary key (notice_id, user_id)
);
create index notice_recipient_user_idx on notice_recipient (user_id);

create table notice_read (
    notice_id text not null references notice (id),
    user_id text not null references app_user (id),
    read_at text not null,
    primary key (notice_id, user_id)
);
