-- Refunds of paid orders, and the daily reconciliation of every fen against the providers'
-- bills (DESIGN.md §4).

-- What has been refunded of an order, kept with the order so that its status follows from one
-- row: PAID, then REFUNDING while a refund is under way, PARTIALLY_REFUNDED or REFUNDED.
alter table payment_order add column refunded_fen bigint not null default 0;

-- The fee rate agreed with the provider, in basis points of the amount (60 = 0.60 %): the fee
-- each bill row should carry.
alter table tenant_wechat_pay add column fee_rate_bp integer not null default 60
    check (fee_rate_bp between 0 and 10000);
alter table tenant_alipay add column fee_rate_bp integer not null default 60
    check (fee_rate_bp between 0 and 10000);

-- One refund of a paid order; several partial refunds may add up to what was paid.
create table payment_refund (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    order_id uuid not null references payment_order (id),
    bill_id uuid not null references bill (id),
    provider text not null check (provider in ('wechat', 'alipay')),
    -- Ours: WeChat out_refund_no, Alipay out_request_no. Unique across providers.
    out_refund_no text not null,
    -- Theirs: WeChat refund_id (Alipay gives none).
    provider_refund_no text,
    amount_fen bigint not null check (amount_fen > 0),
    reason text not null,
    status text not null default 'PROCESSING'
        check (status in ('PROCESSING', 'SUCCESS', 'ABNORMAL', 'CLOSED')),
    -- Why a refund ended CLOSED or ABNORMAL: the provider's code or state.
    failure text,
    -- When the provider accepted it (WeChat create_time; Alipay refunds succeed at once): the
    -- day whose bill lists it.
    accepted_at timestamptz,
    succeeded_at timestamptz,
    -- While PROCESSING: when the refund is next asked about at its provider.
    next_query_at timestamptz,
    query_count integer not null default 0,
    requested_by uuid references app_user (id),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint payment_refund_out_refund_no_key unique (out_refund_no)
);
create index payment_refund_order_idx on payment_refund (order_id, created_at);
create index payment_refund_due_idx on payment_refund (next_query_at) where status = 'PROCESSING';
create index payment_refund_accepted_idx on payment_refund (tenant_id, provider, accepted_at);

-- Flags for refunds: a notification of a refund we never asked for, an amount that differs.
alter table payment_flag drop constraint payment_flag_kind_check;
alter table payment_flag add constraint payment_flag_kind_check check (kind in (
    'PAID_AFTER_CLOSE', 'AMOUNT_MISMATCH', 'MERCHANT_MISMATCH', 'UNKNOWN_ORDER',
    'UNKNOWN_REFUND', 'REFUND_MISMATCH'));

-- Orders paid on a day, for reconciliation's "missing at the provider".
create index payment_order_paid_idx on payment_order (tenant_id, provider, paid_at)
    where paid_at is not null;

-- One reconciliation of one provider's bill for one tenant and business day (Asia/Shanghai).
-- Re-running it reuses the row.
create table reconciliation_run (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    provider text not null check (provider in ('wechat', 'alipay')),
    bill_date date not null,
    status text not null default 'PENDING'
        check (status in ('PENDING', 'RUNNING', 'WAITING', 'DONE', 'FAILED')),
    -- Passes made (each re-run is one more); differences not found again are dropped.
    passes integer not null default 0,
    attempts integer not null default 0,
    next_attempt_at timestamptz,
    error_code text,
    error_detail text,
    -- SHA-1 (WeChat, as the provider gives it) or SHA-256 (Alipay) of the file reconciled.
    bill_digest text,
    payment_count bigint not null default 0,
    payment_fen bigint not null default 0,
    refund_count bigint not null default 0,
    refund_fen bigint not null default 0,
    fee_millifen bigint not null default 0,
    difference_count integer not null default 0,
    repaired_count integer not null default 0,
    started_at timestamptz,
    finished_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint reconciliation_run_day_key unique (tenant_id, provider, bill_date)
);

-- What a run found that does not agree, for people to resolve.
create table reconciliation_difference (
    id uuid primary key,
    run_id uuid not null references reconciliation_run (id),
    tenant_id uuid not null references tenant (id),
    kind text not null check (kind in ('MISSING_LOCALLY', 'MISSING_AT_PROVIDER', 'AMOUNT_MISMATCH',
        'STATUS_MISMATCH', 'FEE_MISMATCH', 'PAID_AFTER_CLOSE')),
    -- out_trade_no, or out_refund_no for a refund's difference.
    reference text not null,
    out_trade_no text,
    order_id uuid,
    refund_id uuid,
    local_fen bigint,
    provider_fen bigint,
    local_status text,
    provider_status text,
    detail text not null,
    -- A missed callback repaired after the provider's answer to a query confirmed it.
    repaired boolean not null default false,
    pass integer not null,
    status text not null default 'OPEN' check (status in ('OPEN', 'RESOLVED')),
    resolution text,
    note text,
    resolved_by uuid references app_user (id),
    resolved_at timestamptz,
    created_at timestamptz not null default now(),
    constraint reconciliation_difference_key unique (run_id, kind, reference)
);
create index reconciliation_difference_open_idx on reconciliation_difference (tenant_id, created_at)
    where status = 'OPEN';

-- The local orders and refunds a pass found in the bill, so that those it did not find are
-- known without holding the bill in memory. Emptied when the pass ends.
create table reconciliation_seen (
    run_id uuid not null,
    item_id uuid not null,
    primary key (run_id, item_id)
);
