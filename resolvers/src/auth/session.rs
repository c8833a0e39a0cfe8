//! Sign-in sessions: an access token plus a rotating refresh token.
//!
//! Each refresh replaces the token with its successor in the same family. Presenting a token
//! that was already replaced means it leaked or a client misbehaves, so the whole family is
//! revoked, with one exception: the token replaced most recently, within the grace window, and
//! whose successor is still unused. That is a client retrying after the answer was lost on a
//! weak link; it gets the same pair again.

use chrono::{DateTime, Utc};
use minigate_store::{self as store, Conn, Db, Id};

use super::{db::UserRow, token::Tokens};
use crate::{Error, Result, audit};

/// What a sign-in or a refresh hands out.
pub struct Issued {
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
    pub user: UserRow,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: Id,
    family_id: Id,
    user_id: Id,
    tenant_id: Id,
    token_hash: String,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    rotated_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

fn chrono_ttl(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(30))
}

/// Starts a new family for `user`, inside the caller's transaction.
pub async fn start(c: &mut Conn, tokens: &Tokens, user: UserRow) -> Result<Issued> {
    let raw = Tokens::new_refresh_token()?;
    let family = Id::new();
    let now = Utc::now();
    let expires = now + chrono_ttl(tokens.refresh_ttl);
    insert_token(c, family, &user, &Tokens::hash(&raw), None, now, expires).await?;
    let (access, access_exp) = tokens.access_token(&user.viewer(family), now)?;
    Ok(Issued {
        access_token: access,
        access_expires_at: access_exp,
        refresh_token: raw,
        refresh_expires_at: expires,
        user,
    })
}

async fn insert_token(
    c: &mut Conn,
    family: Id,
    user: &UserRow,
    hash: &str,
    parent: Option<Id>,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    store::execute!(
        c,
        "insert into refresh_token (id, family_id, user_id, tenant_id, token_hash, parent_id, issued_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        Id::new(),
        family,
        user.id,
        user.tenant_id,
        hash,
        parent,
        issued_at,
        expires_at
    )?;
    Ok(())
}

/// Exchanges a refresh token for a new pair.
pub async fn refresh(db: &Db, tokens: &Tokens, raw: &str) -> Result<Issued> {
    let mut tx = db.begin().await?;
    let outcome = rotate(&mut tx, tokens, raw).await;
    match outcome {
        Ok(issued) => {
            tx.commit().await?;
            Ok(issued)
        }
        Err(Error::RefreshTokenReused) => {
            // The revocation must stick even though the caller gets an error.
            tx.commit().await?;
            Err(Error::RefreshTokenReused)
        }
        Err(e) => Err(e),
    }
}

async fn rotate(tx: &mut Conn, tokens: &Tokens, raw: &str) -> Result<Issued> {
    let now = Utc::now();
    let row = store::fetch_optional!(
        tx,
        TokenRow,
        "select * from refresh_token where token_hash = $1 for update",
        Tokens::hash(raw)
    )?
    .ok_or(Error::RefreshTokenInvalid)?;
    if row.revoked_at.is_some() || row.expires_at <= now {
        return Err(Error::RefreshTokenInvalid);
    }
    let user = super::db::get_user(tx, row.tenant_id, row.user_id).await?;
    if user.disabled_at.is_some() {
        return Err(Error::RefreshTokenInvalid);
    }
    let successor = tokens.successor(raw);
    let Some(rotated_at) = row.rotated_at else {
        let expires = now + chrono_ttl(tokens.refresh_ttl);
        store::execute!(
            tx,
            "update refresh_token set rotated_at = $1 where id = $2",
            now,
            row.id
        )?;
        insert_token(
            tx,
            row.family_id,
            &user,
            &Tokens::hash(&successor),
            Some(row.id),
            now,
            expires,
        )
        .await?;
        let (access, access_exp) = tokens.access_token(&user.viewer(row.family_id), now)?;
        return Ok(Issued {
            access_token: access,
            access_expires_at: access_exp,
            refresh_token: successor,
            refresh_expires_at: expires,
            user,
        });
    };
    let child = store::fetch_optional!(
        tx,
        TokenRow,
        "select * from refresh_token where parent_id = $1",
        row.id
    )?;
    let in_grace = now - rotated_at <= chrono_ttl(tokens.reuse_grace);
    if let Some(child) = child.filter(|ch| {
        in_grace
            && ch.rotated_at.is_none()
            && ch.revoked_at.is_none()
            && ch.token_hash == Tokens::hash(&successor)
    }) {
        let (access, access_exp) =
            tokens.access_token(&user.viewer(row.family_id), child.issued_at)?;
        return Ok(Issued {
            access_token: access,
            access_expires_at: access_exp,
            refresh_token: successor,
            refresh_expires_at: child.expires_at,
            user,
        });
    }
    revoke_family(tx, row.family_id).await?;
    audit::record(
        tx,
        Some(row.tenant_id),
        Some(row.user_id),
        "session.refresh_reuse",
        "session",
        &row.family_id.to_string(),
        serde_json::json!({ "token_id": row.id.to_string() }),
    )
    .await?;
    Err(Error::RefreshTokenReused)
}

pub async fn revoke_family(c: &mut Conn, family: Id) -> Result<u64> {
    Ok(store::execute!(
        c,
        "update refresh_token set revoked_at = now() where family_id = $1 and revoked_at is null",
        family
    )?)
}
