-- Foundation: tenants and their provider identities, the registry (branches, vehicles, drivers),
-- users and sign-in sessions, idempotency keys, the audit log.
-- Secrets are never stored here: *_ref columns hold a reference ('env:NAME' or 'file:/path').

create table tenant (
    id uuid primary key,
    slug text not null,
    name text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint tenant_slug_key unique (slug)
);

-- WeChat mini-programs and official accounts; the app id selects the tenant at sign-in.
create table tenant_app (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    kind text not null check (kind in ('miniprogram', 'official_account')),
    app_id text not null,
    name text not null,
    secret_ref text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint tenant_app_app_id_key unique (app_id)
);
create index tenant_app_tenant_idx on tenant_app (tenant_id);

-- The WeChat Pay merchant (or service-provider sub-merchant) that signs a tenant's orders.
create table tenant_wechat_pay (
    tenant_id uuid primary key references tenant (id),
    mch_id text not null,
    sub_mch_id text not null default '',
    app_id text not null,
    merchant_serial text not null,
    private_key_ref text not null,
    apiv3_key_ref text not null,
    public_key_id text,
    public_key_ref text,
    platform_certs_ref text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint tenant_wechat_pay_mch_key unique (mch_id, sub_mch_id)
);

create table tenant_alipay (
    tenant_id uuid primary key references tenant (id),
    app_id text not null,
    private_key_ref text not null,
    alipay_public_key_ref text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint tenant_alipay_app_id_key unique (app_id)
);

create table branch (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    code text not null,
    name text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint branch_tenant_code_key unique (tenant_id, code)
);

create table vehicle (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    branch_id uuid not null references branch (id),
    plate text not null,
    vin text not null,
    model text,
    status text not null check (status in ('AVAILABLE', 'RENTED', 'MAINTENANCE', 'RETIRED')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint vehicle_tenant_plate_key unique (tenant_id, plate),
    constraint vehicle_tenant_vin_key unique (tenant_id, vin)
);
create index vehicle_branch_idx on vehicle (tenant_id, branch_id, plate);

create table driver (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    branch_id uuid not null references branch (id),
    vehicle_id uuid references vehicle (id),
    name text not null,
    phone text not null,
    id_number text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint driver_tenant_phone_key unique (tenant_id, phone),
    constraint driver_tenant_id_number_key unique (tenant_id, id_number)
);
create index driver_branch_idx on driver (tenant_id, branch_id, name);

create table app_user (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    role text not null check (role in ('driver', 'staff', 'consumer', 'admin')),
    display_name text not null default '',
    phone text,
    password_hash text,
    branch_id uuid references branch (id),
    driver_id uuid references driver (id),
    wx_app_id text,
    wx_openid text,
    wx_unionid text,
    disabled_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index app_user_wechat_key on app_user (wx_app_id, wx_openid) where wx_openid is not null;
create unique index app_user_login_key on app_user (tenant_id, phone) where password_hash is not null;
create unique index app_user_driver_key on app_user (driver_id) where driver_id is not null;
create index app_user_tenant_idx on app_user (tenant_id);

-- Refresh tokens rotate: each use replaces the token with its successor in the same family.
-- Only a hash is stored.
create table refresh_token (
    id uuid primary key,
    family_id uuid not null,
    user_id uuid not null references app_user (id),
    tenant_id uuid not null references tenant (id),
    token_hash text not null,
    parent_id uuid,
    issued_at timestamptz not null,
    expires_at timestamptz not null,
    rotated_at timestamptz,
    revoked_at timestamptz,
    constraint refresh_token_hash_key unique (token_hash)
);
create index refresh_token_family_idx on refresh_token (family_id);

-- A create mutation retried with the same key returns what the first one made.
create table idempotency_key (
    user_id uuid not null references app_user (id),
    key text not null,
    operation text not null,
    result_id uuid not null,
    created_at timestamptz not null default now(),
    primary key (user_id, key)
);

create table audit_log (
    id uuid primary key,
    tenant_id uuid references tenant (id),
    actor_id uuid,
    action text not null,
    entity text not null,
    entity_id text not null,
    detail jsonb not null,
    created_at timestamptz not null default now()
);
create index audit_log_tenant_idx on audit_log (tenant_id, created_at);
