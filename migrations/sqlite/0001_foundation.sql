-- Foundation: tenants and their provider identities, the registry (branches, vehicles, drivers),
-- users and sign-in sessions, idempotency keys, the audit log.
-- Secrets are never stored here: *_ref columns hold a reference ('env:NAME' or 'file:/path').

create table tenant (
    id text primary key,
    slug text not null,
    name text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint tenant_slug_key unique (slug)
);

-- WeChat mini-programs and official accounts; the app id selects the tenant at sign-in.
create table tenant_app (
    id text primary key,
    tenant_id text not null references tenant (id),
    kind text not null check (kind in ('miniprogram', 'official_account')),
    app_id text not null,
    name text not null,
    secret_ref text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint tenant_app_app_id_key unique (app_id)
);
create index tenant_app_tenant_idx on tenant_app (tenant_id);

-- The WeChat Pay merchant (or service-provider sub-merchant) that signs a tenant's orders.
create table tenant_wechat_pay (
    tenant_id text primary key references tenant (id),
    mch_id text not null,
    sub_mch_id text not null default '',
    app_id text not null,
    merchant_serial text not null,
    private_key_ref text not null,
    apiv3_key_ref text not null,
    public_key_id text,
    public_key_ref text,
    platform_certs_ref text,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint tenant_wechat_pay_mch_key unique (mch_id, sub_mch_id)
);

create table tenant_alipay (
    tenant_id text primary key references tenant (id),
    app_id text not null,
    private_key_ref text not null,
    alipay_public_key_ref text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint tenant_alipay_app_id_key unique (app_id)
);

create table branch (
    id text primary key,
    tenant_id text not null references tenant (id),
    code text not null,
    name text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint branch_tenant_code_key unique (tenant_id, code)
);

create table vehicle (
    id text primary key,
    tenant_id text not null references tenant (id),
    branch_id text not null references branch (id),
    plate text not null,
    vin text not null,
    model text,
    status text not null check (status in ('AVAILABLE', 'RENTED', 'MAINTENANCE', 'RETIRED')),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint vehicle_tenant_plate_key unique (tenant_id, plate),
    constraint vehicle_tenant_vin_key unique (tenant_id, vin)
);
create index vehicle_branch_idx on vehicle (tenant_id, branch_id, plate);

create table driver (
    id text primary key,
    tenant_id text not null references tenant (id),
    branch_id text not null references branch (id),
    vehicle_id text references vehicle (id),
    name text not null,
    phone text not null,
    id_number text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint driver_tenant_phone_key unique (tenant_id, phone),
    constraint driver_tenant_id_number_key unique (tenant_id, id_number)
);
create index driver_branch_idx on driver (tenant_id, branch_id, name);

create table app_user (
    id text primary key,
    tenant_id text not null references tenant (id),
    role text not null check (role in ('driver', 'staff', 'consumer', 'admin')),
    display_name text not null default '',
    phone text,
    password_hash text,
    branch_id text references branch (id),
    driver_id text references driver (id),
    wx_app_id text,
    wx_openid text,
    wx_unionid text,
    disabled_at text,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now'))
);
create unique index app_user_wechat_key on app_user (wx_app_id, wx_openid) where wx_openid is not null;
create unique index app_user_login_key on app_user (tenant_id, phone) where password_hash is not null;
create unique index app_user_driver_key on app_user (driver_id) where driver_id is not null;
create index app_user_tenant_idx on app_user (tenant_id);

-- Refresh tokens rotate: each use replaces the token with its successor in the same family.
-- Only a hash is stored.
create table refresh_token (
    id text primary key,
    family_id text not null,
    user_id text not null references app_user (id),
    tenant_id text not null references tenant (id),
    token_hash text not null,
    parent_id text,
    issued_at text not null,
    expires_at text not null,
    rotated_at text,
    revoked_at text,
    constraint refresh_token_hash_key unique (token_hash)
);
create index refresh_token_family_idx on refresh_token (family_id);

-- A create mutation retried with the same key returns what the first one made.
create table idempotency_key (
    user_id text not null references app_user (id),
    key text not null,
    operation text not null,
    result_id text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    primary key (user_id, key)
);

create table audit_log (
    id text primary key,
    tenant_id text references tenant (id),
    actor_id text,
    action text not null,
    entity text not null,
    entity_id text not null,
    detail text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now'))
);
create index audit_log_tenant_idx on audit_log (tenant_id, created_at);
