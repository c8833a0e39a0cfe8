//! Photos attached to records (reports, accidents, audit records, plate registrations): which of
//! the viewer's uploads a record may use, attached in the record's own transaction, and read back
//! for many records at once.
//!
//! The upload keeps its owner, purpose and evidence (`media`); `record_photo` says which record
//! uses it and as what. A photo that is not the viewer's (or, for staff, not visible to them), not
//! processed, or uploaded for another purpose is refused before anything is stored.

use std::collections::HashMap;

use async_graphql::{Enum, ID, dataloader::Loader};
use minigate_media::{Purpose, db::MediaRow};
use minigate_store::{self as store, Conn, Db, Id};
use serde::Serialize;

use crate::{
    Error, Result, Viewer,
    media::{self, Media},
    registry::{LoadError, input::parse_id},
};

/// What a photo shows on the record it is attached to.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum PhotoRole {
    /// A ride-hailing app's income screen.
    Screenshot,
    /// The accident scene.
    Scene,
    /// Damage to a vehicle.
    Damage,
    /// A shop's invoice or receipt.
    Invoice,
    /// The vehicle as found (an audit).
    Vehicle,
    /// The number plate.
    Plate,
    /// A registration or inspection certificate.
    Certificate,
    /// The inspection itself.
    Inspection,
}

impl PhotoRole {
    pub fn as_str(self) -> &'static str {
        match self {
            PhotoRole::Screenshot => "SCREENSHOT",
            PhotoRole::Scene => "SCENE",
            PhotoRole::Damage => "DAMAGE",
            PhotoRole::Invoice => "INVOICE",
            PhotoRole::Vehicle => "VEHICLE",
            PhotoRole::Plate => "PLATE",
            PhotoRole::Certificate => "CERTIFICATE",
            PhotoRole::Inspection => "INSPECTION",
        }
    }

    pub fn parse(s: &str) -> Option<PhotoRole> {
        [
            PhotoRole::Screenshot,
            PhotoRole::Scene,
            PhotoRole::Damage,
            PhotoRole::Invoice,
            PhotoRole::Vehicle,
            PhotoRole::Plate,
            PhotoRole::Certificate,
            PhotoRole::Inspection,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// The upload purposes a photo in this role may have been taken for.
    pub fn purposes(self) -> &'static [Purpose] {
        match self {
            PhotoRole::Screenshot => &[Purpose::IncomeScreenshot],
            PhotoRole::Scene => &[Purpose::Accident],
            PhotoRole::Damage => &[Purpose::Damage, Purpose::Accident],
            PhotoRole::Invoice => &[Purpose::Invoice],
            PhotoRole::Vehicle => &[Purpose::Audit, Purpose::Inspection],
            PhotoRole::Plate => &[Purpose::Plate],
            PhotoRole::Certificate => &[Purpose::Certificate],
            PhotoRole::Inspection => &[Purpose::Inspection],
        }
    }
}

/// The photos a record may carry in one role, checked without the database: ids parse, none
/// repeats, at most `max`.
pub fn parse_ids(field: &str, ids: &[ID], max: usize) -> Result<Vec<Id>> {
    if ids.len() > max {
        return Err(Error::invalid(field, format!("at most {max} photos")));
    }
    let mut out: Vec<Id> = Vec::with_capacity(ids.len());
    for id in ids {
        let id = parse_id(field, id)?;
        if out.contains(&id) {
            return Err(Error::invalid(field, "a photo is listed twice"));
        }
        out.push(id);
    }
    Ok(out)
}

/// Attaches `photos` (role, media id) to `record_id` in the caller's transaction, in order, after
/// checking each one is usable by `v` for its role. A photo listed twice, in two roles, is
/// refused.
pub async fn attach(
    tx: &mut Conn,
    v: &Viewer,
    record_id: Id,
    photos: &[(PhotoRole, Id)],
) -> Result<()> {
    for (i, (role, id)) in photos.iter().enumerate() {
        if photos[..i].iter().any(|(_, other)| other == id) {
            return Err(Error::invalid("photos", "a photo is listed twice"));
        }
        media::usable(tx, v, *id, role.purposes()).await?;
        let position = i32::try_from(i).map_err(|_| Error::invalid("photos", "too many"))?;
        store::execute!(
            tx,
            "insert into record_photo (record_id, media_id, role, position) values ($1, $2, $3, $4)",
            record_id,
            id,
            role.as_str(),
            position
        )?;
    }
    Ok(())
}

/// Replaces the photos of `record_id` (an edit): the new list is checked as [`attach`] checks it.
pub async fn replace(
    tx: &mut Conn,
    v: &Viewer,
    record_id: Id,
    photos: &[(PhotoRole, Id)],
) -> Result<()> {
    store::execute!(
        tx,
        "delete from record_photo where record_id = $1",
        record_id
    )?;
    attach(tx, v, record_id, photos).await
}

/// One attached photo.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PhotoRow {
    pub record_id: Id,
    pub media_id: Id,
    pub role: String,
    pub position: i32,
}

/// The photos of each of `records`, in their order.
pub async fn of_records(c: &mut Conn, records: Vec<Id>) -> Result<HashMap<Id, Vec<PhotoRow>>> {
    let rows = store::fetch_all!(
        c,
        PhotoRow,
        "select record_id, media_id, role, position from record_photo
         where record_id = any($1) order by record_id, position",
        store::List(records)
    )?;
    let mut out: HashMap<Id, Vec<PhotoRow>> = HashMap::new();
    for r in rows {
        out.entry(r.record_id).or_default().push(r);
    }
    Ok(out)
}

/// A photo of a record with its upload.
#[derive(Clone)]
pub struct Attached {
    pub role: PhotoRole,
    pub media: MediaRow,
}

/// Loads the photos of records, batched per request (a page of reports reads its photos in two
/// queries). Photos of another tenant are never returned.
pub struct PhotoLoader {
    pub db: Db,
    pub tenant_id: Option<Id>,
}

impl Loader<Id> for PhotoLoader {
    type Value = Vec<Attached>;
    type Error = LoadError;

    async fn load(&self, keys: &[Id]) -> Result<HashMap<Id, Vec<Attached>>, LoadError> {
        let Some(tenant) = self.tenant_id else {
            return Ok(HashMap::new());
        };
        let mut c = self.db.conn().await.map_err(Error::from)?;
        let by_record = of_records(&mut c, keys.to_vec()).await?;
        let ids: Vec<Id> = by_record.values().flatten().map(|p| p.media_id).collect();
        let media: HashMap<Id, MediaRow> = minigate_media::db::media_by_ids(&mut c, tenant, ids)
            .await
            .map_err(Error::from)?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        Ok(by_record
            .into_iter()
            .map(|(record, rows)| {
                let list = rows
                    .into_iter()
                    .filter_map(|p| {
                        Some(Attached {
                            role: PhotoRole::parse(&p.role)?,
                            media: media.get(&p.media_id)?.clone(),
                        })
                    })
                    .collect();
                (record, list)
            })
            .collect())
    }
}

/// A photo on a record, as a viewer who may see it sees it.
pub struct RecordPhoto {
    pub role: PhotoRole,
    pub media: Media,
}

#[async_graphql::Object]
impl RecordPhoto {
    /// What the photo shows on this record.
    async fn role(&self) -> PhotoRole {
        self.role
    }
    async fn media(&self) -> &Media {
        &self.media
    }
}

/// The photos of `record_id` that `v` may see, for a field resolver.
pub async fn visible(
    ctx: &async_graphql::Context<'_>,
    record_id: Id,
) -> async_graphql::Result<Vec<RecordPhoto>> {
    let v = crate::viewer::viewer(ctx)?;
    let d = crate::viewer::deps(ctx)?;
    let Some(service) = d.media.clone() else {
        return Ok(Vec::new());
    };
    let loaders = ctx.data::<crate::registry::Loaders>()?;
    let list = loaders
        .photos
        .load_one(record_id)
        .await?
        .unwrap_or_default();
    Ok(list
        .into_iter()
        .filter(|p| media::may_see(v, &p.media))
        .map(|p| RecordPhoto {
            role: p.role,
            media: Media::new(p.media, v, service.clone()),
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn photo_ids_are_bounded_and_never_repeat() {
        let a = Id::new();
        let b = Id::new();
        let ids = [ID(a.to_string()), ID(b.to_string())];
        assert_eq!(parse_ids("photos", &ids, 9).unwrap(), vec![a, b]);
        assert!(parse_ids("photos", &ids, 1).is_err());
        assert!(parse_ids("photos", &[ID(a.to_string()), ID(a.to_string())], 9).is_err());
        assert!(parse_ids("photos", &[ID("nope".into())], 9).is_err());
        for r in [PhotoRole::Scene, PhotoRole::Invoice, PhotoRole::Vehicle] {
            assert_eq!(PhotoRole::parse(r.as_str()), Some(r));
            assert!(!r.purposes().is_empty());
        }
    }
}
