-- What the delivery engine needs from around it (DESIGN.md §5): each official account's server
-- settings for its callback, a resumable follower sync, delivery receipts, each tenant's channel
-- order per kind of message, and traffic violations, one of the things that push.

-- The official account's server configuration (公众号 服务器配置): the token that signs its
-- callbacks and the EncodingAESKey of safe mode, as references to secrets like `secret_ref`.
alter table tenant_app add column oa_token_ref text;
alter table tenant_app add column oa_aes_key_ref text;

-- One follower sync per official account: `user/get` pages from `next_openid`, each page's
-- openids described by `user/info/batchget` and stored before the cursor moves on, so a sync cut
-- off resumes at the page it was on.
create table wechat_follower_sync (
    app_id text primary key,
    tenant_id text not null references tenant (id),
    status text not null check (status in ('RUNNING', 'DONE', 'FAILED')),
    -- The `next_openid` of the next page to read; '' before the first.
    next_openid text not null default '',
    -- Followers WeChat says the account has, openids read and followers stored so far.
    total integer not null default 0,
    listed integer not null default 0,
    stored integer not null default 0,
    -- Which process runs it, and until when (then another may take it over).
    holder text,
    lease_until text,
    last_error text,
    started_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    finished_at text,
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now'))
);

-- When a sync last saw the follower listed: after a complete sync, a follower it did not list has
-- unfollowed unnoticed.
alter table wechat_follower add column listed_at text;

-- What WeChat reported after accepting a template message (TEMPLATESENDJOBFINISH).
alter table push_delivery add column receipt text;
alter table push_delivery add column receipt_at text;
create index push_delivery_msg_idx on push_delivery (provider_msg_id) where provider_msg_id is not null;

-- A tenant's channel order for one kind of message, first first, comma-separated
-- ('SUBSCRIBE,TEMPLATE,IN_APP'); a kind without a row uses the built-in order.
create table push_route (
    tenant_id text not null references tenant (id),
    kind text not null,
    channels text not null,
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    primary key (tenant_id, kind)
);

-- A traffic violation the authorities recorded against one of the fleet's vehicles (违章), and
-- the driver who had it then.
create table traffic_violation (
    id text primary key,
    tenant_id text not null references tenant (id),
    vehicle_id text not null references vehicle (id),
    driver_id text references driver (id),
    occurred_at text not null,
    place text not null,
    description text not null,
    fine_fen bigint not null check (fine_fen >= 0),
    points integer not null check (points between 0 and 12),
    -- The authorities' decision number: recording one twice is one violation.
    reference text not null,
    created_by text references app_user (id),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint traffic_violation_tenant_id_reference_key unique (tenant_id, reference)
);
create index traffic_violation_driver_idx on traffic_violation (driver_id, occurred_at);
create index traffic_violation_tenant_idx on traffic_violation (tenant_id, occurred_at);
create index traffic_violation_vehicle_idx on traffic_violation (vehicle_id, occurred_at);
