-- Photos (DESIGN.md §6): the bytes are kept by content hash in blob storage (a folder or an
-- object store); each upload is its own record with its own owner, even when its bytes were
-- uploaded before.

-- What blob storage holds: one row per stored object, so the same bytes are written once and the
-- bytes stored can be counted without listing the store.
create table media_blob (
    sha256 text not null,
    kind text not null check (kind in ('original', 'display', 'thumbnail')),
    bytes bigint not null check (bytes > 0),
    content_type text not null,
    created_at timestamptz not null default now(),
    constraint media_blob_pkey primary key (kind, sha256)
);

create table media (
    id uuid primary key,
    tenant_id uuid not null references tenant (id),
    owner_id uuid not null references app_user (id),
    -- The uploader's branch at upload time: staff of that branch may see and use shared purposes.
    branch_id uuid references branch (id),
    purpose text not null check (purpose in ('accident', 'damage', 'invoice', 'plate', 'certificate',
        'inspection', 'audit', 'income_screenshot', 'avatar')),
    status text not null default 'READY' check (status in ('PROCESSING', 'READY')),
    -- The original, kept privately as evidence: as received, never re-encoded.
    format text not null check (format in ('jpeg', 'png', 'webp')),
    original_sha256 text not null,
    original_bytes bigint not null,
    -- Pixel size after the EXIF orientation is applied.
    width integer not null,
    height integer not null,
    display_sha256 text not null,
    display_width integer not null,
    display_height integer not null,
    thumbnail_sha256 text not null,
    thumbnail_width integer not null,
    thumbnail_height integer not null,
    -- When the server had the last byte: the evidence time.
    received_at timestamptz not null,
    -- What the photo's EXIF claims (the phone's clock and GPS): shown to staff as claims.
    claimed_taken_at text,
    claimed_latitude double precision,
    claimed_longitude double precision,
    claimed_camera text,
    exif_unreadable boolean not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index media_owner_idx on media (tenant_id, owner_id, created_at);
create index media_original_idx on media (original_sha256);
