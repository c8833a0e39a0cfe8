//! `idempotencyKey` on create mutations: a retry on a weak network returns what the first
//! attempt made instead of filing it twice.

use minigate_store::{self as store, Conn, Id};

use crate::{Error, Result};

/// What a key already produced, if anything. A key reused for another operation, or for the same
/// operation with other input, is an error.
pub async fn lookup(
    c: &mut Conn,
    user_id: Id,
    key: &str,
    operation: &str,
    input: Option<&str>,
) -> Result<Option<Id>> {
    let found: Option<(String, Option<String>, Id)> = store::fetch_optional!(
        c,
        (String, Option<String>, Id),
        "select operation, input_hash, result_id from idempotency_key where user_id = $1 and key = $2",
        user_id,
        key
    )?;
    match found {
        Some((op, stored, id)) if op == operation => match (stored.as_deref(), input) {
            (Some(a), Some(b)) if a != b => Err(Error::IdempotencyKeyReused),
            _ => Ok(Some(id)),
        },
        Some(_) => Err(Error::IdempotencyKeyReused),
        None => Ok(None),
    }
}

/// The fingerprint of a mutation's checked input: SHA-256 of its JSON form, hex. Two requests
/// with the same key are the same request only if their inputs have the same fingerprint.
pub fn fingerprint(input: &impl serde::Serialize) -> Result<String> {
    let json = serde_json::to_vec(input)
        .map_err(|e| Error::Internal(format!("input not serialisable: {e}")))?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &json);
    Ok(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

pub fn validate_key(key: &str) -> Result<()> {
    if (8..=128).contains(&key.len()) && key.chars().all(|c| c.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "idempotencyKey",
            "8 to 128 printable ASCII characters",
        ))
    }
}

/// Whether `e` is the unique violation of a concurrent request with the same key.
fn is_race(e: &Error) -> bool {
    matches!(e, Error::Store(s) if s.is_unique(&store::Unique {
        name: "idempotency_key_pkey",
        table: "idempotency_key",
        columns: &["user_id", "key"],
    }))
}

/// Runs `create` at most once per (user, key): the first call creates and remembers, a retry
/// returns the remembered id. `create` runs inside a fresh write transaction.
///
/// The key is reserved before `create` runs, in the same transaction: a concurrent twin blocks
/// on the reservation (PostgreSQL's unique index; SQLite's single writer) until the first
/// commits, then fails on it and reads the first one's result.
pub async fn once<F>(
    db: &store::Db,
    user_id: Id,
    key: Option<&str>,
    operation: &str,
    create: F,
) -> Result<Id>
where
    F: AsyncFnOnce(&mut Conn) -> Result<Id>,
{
    run(db, user_id, key, operation, None, create).await
}

/// [`once`], and a retry must also carry the same input: the same key with different input is
/// `IDEMPOTENCY_KEY_REUSED` and files nothing. `input` is the checked input (trimmed, parsed),
/// so a retry that differs only in what checking removes is the same request.
pub async fn once_for<F>(
    db: &store::Db,
    user_id: Id,
    key: Option<&str>,
    operation: &str,
    input: &impl serde::Serialize,
    create: F,
) -> Result<Id>
where
    F: AsyncFnOnce(&mut Conn) -> Result<Id>,
{
    let hash = match key {
        Some(_) => Some(fingerprint(input)?),
        None => None,
    };
    run(db, user_id, key, operation, hash.as_deref(), create).await
}

async fn run<F>(
    db: &store::Db,
    user_id: Id,
    key: Option<&str>,
    operation: &str,
    input: Option<&str>,
    create: F,
) -> Result<Id>
where
    F: AsyncFnOnce(&mut Conn) -> Result<Id>,
{
    let Some(key) = key else {
        let mut tx = db.begin().await?;
        let id = create(&mut tx).await?;
        tx.commit().await?;
        return Ok(id);
    };
    validate_key(key)?;
    let mut tx = db.begin().await?;
    if let Some(id) = lookup(&mut tx, user_id, key, operation, input).await? {
        return Ok(id);
    }
    let attempt = async {
        store::execute!(
            &mut tx,
            "insert into idempotency_key (user_id, key, operation, input_hash, result_id)
             values ($1, $2, $3, $4, $5)",
            user_id,
            key,
            operation,
            input,
            Id::new()
        )?;
        let id = create(&mut tx).await?;
        store::execute!(
            &mut tx,
            "update idempotency_key set result_id = $1 where user_id = $2 and key = $3",
            id,
            user_id,
            key
        )?;
        tx.commit().await?;
        Ok(id)
    }
    .await;
    match attempt {
        Err(e) if is_race(&e) => {
            let mut c = db.conn().await?;
            lookup(&mut c, user_id, key, operation, input)
                .await?
                .ok_or(Error::Internal("idempotency race without a winner".into()))
        }
        other => other,
    }
}
