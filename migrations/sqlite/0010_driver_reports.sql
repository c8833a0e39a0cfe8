-- What drivers file from the mini-program (DESIGN.md §1): weekly income, accidents followed
-- through a workflow, maintenance; and what every record with photos or a workflow shares.

-- A retried create mutation must carry the same input as the first: the first input's
-- fingerprint is kept so a key reused with different input is refused, not silently answered
-- with the first result. Keys stored before this migration have none and match any input.
alter table idempotency_key add column input_hash text;

-- Photos attached to a record (a report, an accident, an audit record, a plate registration):
-- the photo's own row keeps owner, purpose and evidence; this says where it is used and as what.
create table record_photo (
    record_id text not null,
    media_id text not null references media (id),
    role text not null check (role in ('SCREENSHOT', 'SCENE', 'DAMAGE', 'INVOICE', 'VEHICLE',
        'PLATE', 'CERTIFICATE', 'INSPECTION')),
    position integer not null,
    constraint record_photo_pkey primary key (record_id, media_id)
);
create index record_photo_media_idx on record_photo (media_id);

-- Each step of a record's workflow (an accident, a plate registration): who moved it to which
-- status and when. Statuses only move forward, so a status is reached at most once: the key
-- refuses a second, concurrent move to the same status.
create table workflow_step (
    record_id text not null,
    status text not null,
    actor_id text not null references app_user (id),
    note text,
    at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint workflow_step_pkey primary key (record_id, status)
);

-- A driver's weekly income on one ride-hailing platform: one per driver, platform and week
-- (the Monday the week starts, Asia/Shanghai), editable until an operator confirms it.
create table income_report (
    id text primary key,
    tenant_id text not null references tenant (id),
    branch_id text not null references branch (id),
    driver_id text not null references driver (id),
    filed_by text not null references app_user (id),
    week_start text not null,
    platform text not null check (platform in ('DIDI', 'AMAP', 'T3', 'CAOCAO', 'MEITUAN',
        'HUAXIAOZHU', 'RUQI', 'OTHER')),
    orders integer not null check (orders >= 0),
    online_minutes integer not null check (online_minutes >= 0),
    gross_income_fen integer not null check (gross_income_fen >= 0),
    status text not null check (status in ('SUBMITTED', 'CONFIRMED')),
    confirmed_by text references app_user (id),
    confirmed_at text,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    constraint income_report_driver_platform_week_key unique (driver_id, platform, week_start)
);
create index income_report_tenant_idx on income_report (tenant_id, week_start);

-- An accident as the driver reported it, and where its workflow stands
-- (SUBMITTED → ACKNOWLEDGED → IN_REPAIR → CLOSED, or REJECTED with a reason).
create table accident_report (
    id text primary key,
    tenant_id text not null references tenant (id),
    branch_id text not null references branch (id),
    driver_id text not null references driver (id),
    vehicle_id text not null references vehicle (id),
    reported_by text not null references app_user (id),
    occurred_at text not null,
    latitude real not null,
    longitude real not null,
    address text not null,
    description text not null,
    other_party text,
    police_report_no text,
    injured_count integer not null check (injured_count >= 0),
    injuries text,
    status text not null check (status in ('SUBMITTED', 'ACKNOWLEDGED', 'IN_REPAIR', 'CLOSED',
        'REJECTED')),
    reject_reason text,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now'))
);
create index accident_report_branch_idx on accident_report (tenant_id, branch_id, created_at);
create index accident_report_driver_idx on accident_report (driver_id, created_at);

-- Maintenance a driver had done: where, what, for how much, and when it is due again.
create table maintenance_report (
    id text primary key,
    tenant_id text not null references tenant (id),
    branch_id text not null references branch (id),
    driver_id text not null references driver (id),
    vehicle_id text not null references vehicle (id),
    filed_by text not null references app_user (id),
    serviced_on text not null,
    mileage_km integer not null check (mileage_km >= 0),
    kind text not null check (kind in ('ROUTINE', 'REPAIR', 'TYRES', 'BATTERY', 'BODYWORK',
        'INSPECTION', 'OTHER')),
    shop text not null,
    cost_fen integer not null check (cost_fen >= 0),
    notes text not null default '',
    next_due_mileage_km integer,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%f+00:00','now'))
);
create index maintenance_report_branch_idx on maintenance_report (tenant_id, branch_id, created_at);
create index maintenance_report_driver_idx on maintenance_report (driver_id, created_at);
