-- Events. A change writes its event here in its own transaction. The dispatcher gives committed
-- rows their event id (seq, strictly increasing, in the order they became visible) and publishes
-- them. The table is also the replay log a reconnecting subscriber resumes from.
create table outbox_event (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    topic text not null,
    kind text not null,
    payload jsonb not null,
    seq bigint,
    created_at timestamptz not null default now(),
    published_at timestamptz,
    constraint outbox_event_seq_key unique (seq)
);
create index outbox_event_pending_idx on outbox_event (created_at) where seq is null;
create index outbox_event_unsent_idx on outbox_event (seq) where seq is not null and published_at is null;
create index outbox_event_topic_idx on outbox_event (topic, seq);

-- Notices operators publish to a whole company, a branch or named users.
create table notice (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    audience text not null check (audience in ('tenant', 'branch', 'users')),
    branch_id uuid references branch (id),
    title text not null,
    body text not null,
    link text,
    created_by uuid references app_user (id),
    created_at timestamptz not null default now()
);
create index notice_tenant_idx on notice (tenant_id, created_at);

create table notice_recipient (
    notice_id uuid not null references notice (id),
    user_id uuid not null references app_user (id),
    primary key (notice_id, user_id)
);
create index notice_recipient_user_idx on notice_recipient (user_id);

create table notice_read (
    notice_id uuid not null references notice (id),
    user_id uuid not null references app_user (id),
    read_at timestamptz not null,
    primary key (notice_id, user_id)
);
