//! Who may see a photo and who may attach it to a record.

use minigate_media::{Purpose, db::MediaRow};
use minigate_store::{Conn, Id};

use crate::{Result, Role, Viewer};

/// The uploader always; operators of the tenant; staff of the uploader's branch for purposes
/// shared with staff (an accident photo, not a driver's income screenshot).
pub fn may_see(v: &Viewer, m: &MediaRow) -> bool {
    if m.tenant_id != v.tenant_id {
        return false;
    }
    if m.owner_id == v.user_id {
        return true;
    }
    let shared = m.purpose().is_some_and(Purpose::shared_with_staff);
    match v.role {
        Role::Admin => true,
        Role::Staff => shared && v.branch_id.is_some() && m.branch_id == v.branch_id,
        Role::Driver | Role::Consumer => false,
    }
}

/// The original and what its EXIF claims (time, place, camera) are for staff and operators only,
/// not even for the uploader: they are evidence, and the place is personal data.
pub fn may_see_evidence(v: &Viewer, m: &MediaRow) -> bool {
    matches!(v.role, Role::Admin | Role::Staff) && may_see(v, m)
}

/// The photo `id` if `v` may attach it to a record of one of `purposes`: it must be processed,
/// of a listed purpose, and the viewer's own (or, for purposes shared with staff, visible to the
/// staff member or operator). Anything else is `MEDIA_NOT_FOUND`, so ids of other people's photos
/// cannot be probed; a photo of the wrong purpose is `MEDIA_PURPOSE_INVALID`.
pub async fn usable(c: &mut Conn, v: &Viewer, id: Id, purposes: &[Purpose]) -> Result<MediaRow> {
    let m = minigate_media::db::find_media(c, v.tenant_id, id)
        .await?
        .ok_or(minigate_media::Error::NotFound)?;
    let own = m.owner_id == v.user_id;
    let staff_use = matches!(v.role, Role::Admin | Role::Staff) && may_see(v, &m);
    if !own && !staff_use {
        return Err(minigate_media::Error::NotFound.into());
    }
    let purpose = m.purpose();
    if !purpose.is_some_and(|p| purposes.contains(&p)) {
        return Err(minigate_media::Error::PurposeInvalid(m.purpose.clone()).into());
    }
    if !m.is_ready() {
        return Err(minigate_media::Error::NotReady.into());
    }
    Ok(m)
}
