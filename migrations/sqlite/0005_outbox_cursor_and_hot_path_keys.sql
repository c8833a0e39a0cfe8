-- PostgreSQL drops the tenant foreign keys of payment_notification, ledger_entry and
-- outbox_event here (see postgres/0005): each check locked the tenant's row, shared by every
-- concurrent notification. SQLite has one writer at a time and no row locks, so its keys stay.

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
