-- App push (DESIGN.md §5): the devices people's phone apps registered, per provider and
-- environment, and each company's provider credentials.

-- One device token of one person's app. A token is the provider's address of one app install:
-- registered again by someone else (a phone handed on, another account signed in), it moves to
-- them. APNs sandbox and production tokens are kept apart: a provider's refusal of a token
-- removes it for that provider and environment only.
create table push_device (
    id text primary key,
    tenant_id text not null references tenant (id),
    user_id text not null references app_user (id),
    provider text not null check (provider in ('FCM', 'APNS', 'HUAWEI')),
    environment text not null check (environment in ('SANDBOX', 'PRODUCTION')),
    token text not null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    -- When the app last registered it (apps do at every start).
    seen_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint push_device_token_key unique (provider, environment, token)
);
create index push_device_user_idx on push_device (user_id);

-- A company's credentials with one provider, as references to secrets like `secret_ref`:
-- FCM: `key_ref` is the service-account key file (its project comes from the file);
-- APNS: `key_ref` is the .p8 key, with its `key_id`, the `team_id` and the app's bundle id
-- (`topic`); HUAWEI: `key_ref` is the app secret of app `app_id`.
create table tenant_push_provider (
    tenant_id text not null references tenant (id),
    provider text not null check (provider in ('FCM', 'APNS', 'HUAWEI')),
    key_ref text not null,
    app_id text,
    team_id text,
    key_id text,
    topic text,
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    primary key (tenant_id, provider)
);
