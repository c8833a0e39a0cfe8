-- The append-only logs written by every payment notification (the raw notification, the ledger
-- entry, the outbox event) no longer check their tenant_id against tenant with a foreign key.
--
-- Each such check takes a KEY SHARE lock on the tenant's row. With dozens of notifications of one
-- company committing at once, every transaction locks the same row, PostgreSQL records the
-- lockers in a multixact per change, and that bookkeeping became the largest cost of a
-- notification. tenant_id on these rows is always copied from a row that does reference tenant
-- (the order, the bill, the merchant), and tenants are never deleted.
alter table payment_notification drop constraint payment_notification_tenant_id_fkey;
alter table ledger_entry drop constraint ledger_entry_tenant_id_fkey;
alter table outbox_event drop constraint outbox_event_tenant_id_fkey;

-- How far the dispatcher has published, as one number instead of a published_at on every event:
-- events are published in seq order, so "published" is "seq <= published_seq". Marking each row
-- rewrote it (and its index entries) a second time after numbering.
create table outbox_cursor (
    id integer primary key check (id = 1),
    published_seq bigint not null
);
insert into outbox_cursor (id, published_seq)
select 1, coalesce(max(seq), 0) from outbox_event where published_at is not null;
drop index outbox_event_unsent_idx;
alter table outbox_event drop column published_at;
