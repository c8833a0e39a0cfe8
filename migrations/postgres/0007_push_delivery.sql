-- Messages to people outside the app (DESIGN.md §5): one delivery row per recipient and channel,
-- written in the transaction of the change that caused it, claimed by workers, every attempt
-- recorded; the consents mini-program users gave for subscribe messages; the official account's
-- followers; what each tenant sends for each kind of message, and its quiet hours.

-- One message to one person on one channel. When a channel refuses for good, the next channel of
-- `fallback` gets its own row.
create table push_delivery (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    user_id uuid not null references app_user (id),
    -- NOTICE, ACCIDENT, PAYMENT, RENT_DUE, VIOLATION: names the template and the channel order.
    kind text not null,
    -- ESSENTIAL (payments, accidents: never deferred or dropped), REMINDER, MARKETING.
    class text not null check (class in ('ESSENTIAL', 'REMINDER', 'MARKETING')),
    -- What caused it (the notice, the order, the bill …): with kind, user and channel, its key.
    source_id uuid not null,
    channel text not null check (channel in ('SUBSCRIBE', 'TEMPLATE', 'APP', 'IN_APP')),
    -- The channels still to try after this one, in order, comma-separated.
    fallback text not null default '',
    payload jsonb not null,
    status text not null default 'PENDING'
        check (status in ('PENDING', 'SENDING', 'SENT', 'FELL_THROUGH', 'DEAD')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null,
    -- While SENDING: which worker holds it, and until when (then it is taken back).
    claimed_by text,
    lease_until timestamptz,
    last_code text,
    last_detail text,
    provider_msg_id text,
    sent_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint push_delivery_key unique (kind, source_id, user_id, channel)
);
create index push_delivery_due_idx on push_delivery (next_attempt_at) where status = 'PENDING';
create index push_delivery_lease_idx on push_delivery (lease_until) where status = 'SENDING';
create index push_delivery_user_idx on push_delivery (tenant_id, user_id, created_at);
create index push_delivery_status_idx on push_delivery (tenant_id, status, created_at);
-- Today's capped messages of one person (the daily cap).
create index push_delivery_sent_idx on push_delivery (user_id, sent_at) where status = 'SENT';

-- Every attempt and what came of it.
create table push_attempt (
    id uuid primary key,
    delivery_id uuid not null references push_delivery (id),
    attempt integer not null,
    channel text not null,
    outcome text not null
        check (outcome in ('SENT', 'PERMANENT', 'TRANSIENT', 'CREDENTIAL', 'DEFERRED', 'RECLAIMED')),
    code text,
    detail text,
    worker text not null,
    at timestamptz not null default now()
);
create index push_attempt_delivery_idx on push_attempt (delivery_id, at);

-- Each accepted `wx.requestSubscribeMessage` result allows exactly one subscribe message.
create table subscribe_consent (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    user_id uuid not null references app_user (id),
    app_id text not null,
    template_id text not null,
    granted_at timestamptz not null default now(),
    used_at timestamptz,
    delivery_id uuid
);
create index subscribe_consent_unused_idx on subscribe_consent (user_id, app_id, template_id, granted_at)
    where used_at is null;

-- The official account's followers, by their official-account openid.
create table wechat_follower (
    app_id text not null,
    openid text not null,
    tenant_id uuid not null references tenant (id),
    unionid text,
    subscribed boolean not null,
    subscribed_at timestamptz,
    unsubscribed_at timestamptz,
    updated_at timestamptz not null default now(),
    primary key (app_id, openid)
);
create index wechat_follower_unionid_idx on wechat_follower (tenant_id, unionid) where unionid is not null;

-- What a tenant sends for each kind of message on each WeChat channel: the app (mini-program or
-- official account), the template, which payload field fills which template keyword, and the
-- page the message opens.
create table push_template (
    tenant_id uuid not null references tenant (id),
    kind text not null,
    channel text not null check (channel in ('SUBSCRIBE', 'TEMPLATE')),
    app_id text not null,
    template_id text not null,
    -- {"thing1": "title", "time2": "at"}: template keyword → payload field.
    fields jsonb not null,
    page text,
    updated_at timestamptz not null default now(),
    primary key (tenant_id, kind, channel)
);

-- Per tenant: quiet hours (minutes after midnight, Asia/Shanghai; start > end wraps midnight)
-- and how many reminders and marketing messages one person gets a day.
create table push_policy (
    tenant_id uuid primary key references tenant (id),
    quiet_start_minute integer not null default 1320 check (quiet_start_minute between 0 and 1439),
    quiet_end_minute integer not null default 480 check (quiet_end_minute between 0 and 1439),
    daily_cap integer not null default 3 check (daily_cap >= 0),
    updated_at timestamptz not null default now()
);
