-- What field staff do from the staff mini-program (DESIGN.md §1): asset audits of a branch's
-- vehicles, plate registration and inspection (验车上牌), and follow-ups of prospects (意向客户回访).
-- Photos go to `record_photo` and workflow steps to `workflow_step` (0010), keyed by these ids.

-- An asset audit (资产盘点) of one branch. The counters are kept in the row, recounted from the
-- findings under the row's lock in each finding's transaction, so a live progress read is one
-- row and two staff recording at once never lose a count.
create table asset_audit (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    branch_id uuid not null references branch (id),
    title text not null,
    status text not null check (status in ('OPEN', 'CLOSED')),
    -- Vehicles on the list (snapshot taken at opening).
    listed_count integer not null check (listed_count >= 0),
    -- Listed vehicles found so far.
    found_count integer not null default 0 check (found_count >= 0),
    -- Vehicles found that the list does not have (another branch's, or unknown to the registry).
    unlisted_count integer not null default 0 check (unlisted_count >= 0),
    opened_by uuid not null references app_user (id),
    closed_by uuid references app_user (id),
    closed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index asset_audit_branch_idx on asset_audit (tenant_id, branch_id, created_at);

-- The audit's list: the branch's vehicles that were not retired when it opened. Plate and VIN
-- are copied so the list (and what went missing) reads the same after the registry changes.
create table asset_audit_item (
    audit_id uuid not null references asset_audit (id),
    vehicle_id uuid not null references vehicle (id),
    plate text not null,
    vin text not null,
    constraint asset_audit_item_pkey primary key (audit_id, vehicle_id)
);

-- A vehicle staff found during an audit. `subject` says which vehicle it is within the audit
-- ('vehicle:<id>' for one of the registry, 'vin:<VIN>' or 'plate:<plate>' for one it does not
-- know): recording the same vehicle again updates its finding instead of adding a second one.
create table asset_audit_finding (
    id uuid primary key,
    audit_id uuid not null references asset_audit (id),
    subject text not null,
    vehicle_id uuid references vehicle (id),
    plate text,
    vin text,
    listed boolean not null,
    mileage_km integer not null check (mileage_km >= 0),
    condition text not null check (condition in ('GOOD', 'MINOR_DAMAGE', 'MAJOR_DAMAGE',
        'NOT_DRIVABLE')),
    note text,
    recorded_by uuid not null references app_user (id),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint asset_audit_finding_audit_subject_key unique (audit_id, subject)
);
create index asset_audit_finding_vehicle_idx on asset_audit_finding (audit_id, vehicle_id);

-- What closing an audit found wrong, stored once at close: MISSING (listed, not found; the
-- subject is the vehicle) and UNLISTED (found, not listed; the subject is the finding).
create table asset_audit_discrepancy (
    audit_id uuid not null references asset_audit (id),
    kind text not null check (kind in ('MISSING', 'UNLISTED')),
    subject_id uuid not null,
    vehicle_id uuid references vehicle (id),
    plate text,
    vin text,
    constraint asset_audit_discrepancy_pkey primary key (audit_id, kind, subject_id)
);

-- A plate registration and inspection (验车上牌) of one vehicle, moved forward by operators
-- (SUBMITTED → INSPECTED → PLATED → COMPLETED, or REJECTED with a reason); at COMPLETED the
-- vehicle takes the plate in the same transaction.
create table plate_registration (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    branch_id uuid not null references branch (id),
    vehicle_id uuid not null references vehicle (id),
    plate text not null,
    -- The vehicle's plate when it was submitted (a temporary plate, or the one replaced).
    previous_plate text not null,
    status text not null check (status in ('SUBMITTED', 'INSPECTED', 'PLATED', 'COMPLETED',
        'REJECTED')),
    note text,
    reject_reason text,
    submitted_by uuid not null references app_user (id),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index plate_registration_branch_idx on plate_registration (tenant_id, branch_id, created_at);
-- One registration under way per vehicle: two would race to give it two plates.
create unique index plate_registration_vehicle_open_key on plate_registration (vehicle_id)
    where status in ('SUBMITTED', 'INSPECTED', 'PLATED');

-- A prospect's follow-up (意向客户回访): who, what was said, the outcome and when to call again
-- (a business date, Asia/Shanghai). Open outcomes carry their next date, closed ones none, so
-- "due today" is a range read of `next_date`.
create table follow_up (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    branch_id uuid not null references branch (id),
    author_id uuid not null references app_user (id),
    prospect_name text not null,
    prospect_phone text not null,
    notes text not null,
    outcome text not null check (outcome in ('INTERESTED', 'CALL_BACK', 'NOT_INTERESTED',
        'SIGNED', 'UNREACHABLE')),
    next_date date,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint follow_up_next_date_check check (
        (outcome in ('INTERESTED', 'CALL_BACK') and next_date is not null)
        or (outcome in ('NOT_INTERESTED', 'SIGNED') and next_date is null)
        or outcome = 'UNREACHABLE')
);
create index follow_up_due_idx on follow_up (tenant_id, next_date);
create index follow_up_branch_idx on follow_up (tenant_id, branch_id, id);
