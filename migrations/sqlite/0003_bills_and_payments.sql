-- Bills people owe, the provider orders that pay them, every notification providers sent, the
-- ledger of money that moved, and what needs a person's decision (DESIGN.md §4).

create table bill (
    id text primary key,
    tenant_id text not null references tenant (id),
    branch_id text references branch (id),
    -- The payer: a driver of the registry, or a named consumer without a driver record.
    driver_id text references driver (id),
    payer_name text not null,
    kind text not null check (kind in ('rent', 'deposit', 'fine', 'purchase')),
    title text not null,
    amount_fen bigint not null check (amount_fen > 0),
    -- A calendar day in Asia/Shanghai, YYYY-MM-DD.
    due_date text not null,
    status text not null default 'OPEN' check (status in ('OPEN', 'PAID', 'CANCELLED')),
    -- The operator's own number for the bill (from a CSV import); makes re-imports idempotent.
    reference text,
    paid_at text,
    created_by text references app_user (id),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint bill_tenant_id_reference_key unique (tenant_id, reference)
);
create index bill_tenant_due_idx on bill (tenant_id, due_date);
create index bill_driver_idx on bill (driver_id, due_date);

create table payment_order (
    id text primary key,
    tenant_id text not null references tenant (id),
    bill_id text not null references bill (id),
    provider text not null check (provider in ('wechat', 'alipay')),
    channel text not null check (channel in ('WECHAT_NATIVE', 'WECHAT_JSAPI', 'ALIPAY_QR')),
    -- At most 32 characters of [0-9A-Za-z_-], unique across every tenant and provider.
    out_trade_no text not null,
    -- The identity that signed the order: WeChat Pay mchid, or the Alipay app id.
    merchant_id text not null,
    app_id text not null,
    amount_fen bigint not null check (amount_fen > 0),
    description text not null,
    status text not null default 'CREATED'
        check (status in ('CREATED', 'PAID', 'CLOSED', 'REFUNDING', 'REFUNDED', 'PARTIALLY_REFUNDED')),
    payer_openid text,
    -- What the QR shows (WeChat code_url, Alipay qr_code), or the JSAPI prepay id.
    code_url text,
    prepay_id text,
    provider_trade_no text,
    paid_fen bigint,
    paid_at text,
    expires_at text not null,
    -- When the active query looks at this order next, while it is CREATED.
    next_query_at text not null,
    query_count integer not null default 0,
    closed_at text,
    created_by text references app_user (id),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint payment_order_out_trade_no_key unique (out_trade_no)
);
-- A bill has at most one open order.
create unique index payment_order_open_bill_key on payment_order (bill_id) where status = 'CREATED';
create index payment_order_due_idx on payment_order (next_query_at) where status = 'CREATED';
create index payment_order_bill_idx on payment_order (bill_id, created_at);

-- Every verified notification, raw (body and headers) so it can be verified again later, once
-- per provider notification id.
create table payment_notification (
    id text primary key,
    provider text not null check (provider in ('wechat', 'alipay')),
    dedup_key text not null,
    tenant_id text references tenant (id),
    out_trade_no text,
    event_type text not null,
    headers text not null,
    body text not null,
    outcome text not null,
    received_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint payment_notification_provider_dedup_key_key unique (provider, dedup_key)
);
create index payment_notification_trade_idx on payment_notification (out_trade_no);

-- Money that moved, one row per provider transaction and kind.
create table ledger_entry (
    id text primary key,
    tenant_id text not null references tenant (id),
    order_id text not null references payment_order (id),
    bill_id text not null references bill (id),
    kind text not null check (kind in ('PAYMENT', 'REFUND')),
    amount_fen bigint not null,
    provider text not null,
    provider_ref text not null,
    -- What told us: CALLBACK, QUERY or RECONCILIATION.
    source text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint ledger_entry_order_id_kind_provider_ref_key unique (order_id, kind, provider_ref)
);
create index ledger_entry_tenant_idx on ledger_entry (tenant_id, created_at);

-- What the system refused to decide alone: money paid to a closed order, an amount that does
-- not match, a notification for another merchant.
create table payment_flag (
    id text primary key,
    tenant_id text references tenant (id),
    order_id text references payment_order (id),
    notification_id text references payment_notification (id),
    kind text not null check (kind in ('PAID_AFTER_CLOSE', 'AMOUNT_MISMATCH', 'MERCHANT_MISMATCH', 'UNKNOWN_ORDER')),
    detail text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    resolved_at text,
    resolved_by text references app_user (id),
    resolution text
);
create index payment_flag_open_idx on payment_flag (tenant_id, created_at) where resolved_at is null;
