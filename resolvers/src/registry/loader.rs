use std::collections::HashMap;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use minigate_store::{Db, Id};

use super::db::{self, BranchRow, DriverRow, VehicleRow};
use crate::Error;

/// Batches every "belongs to" edge of one request into one query per kind, and remembers what
/// it loaded for the rest of the request (lists feed it the rows they already read).
pub struct Loaders {
    pub branches: DataLoader<BranchLoader, HashMapCache>,
    pub vehicles: DataLoader<VehicleLoader, HashMapCache>,
    pub drivers: DataLoader<DriverLoader, HashMapCache>,
    /// Photos attached to records (reports, audit findings, registrations).
    pub photos: DataLoader<crate::photos::PhotoLoader, HashMapCache>,
}

impl Loaders {
    /// Loaders scoped to the viewer's tenant; with no viewer they find nothing.
    pub fn new(db: Db, tenant_id: Option<Id>) -> Self {
        Self {
            branches: DataLoader::with_cache(
                BranchLoader {
                    db: db.clone(),
                    tenant_id,
                },
                tokio::spawn,
                HashMapCache::default(),
            ),
            vehicles: DataLoader::with_cache(
                VehicleLoader {
                    db: db.clone(),
                    tenant_id,
                },
                tokio::spawn,
                HashMapCache::default(),
            ),
            drivers: DataLoader::with_cache(
                DriverLoader {
                    db: db.clone(),
                    tenant_id,
                },
                tokio::spawn,
                HashMapCache::default(),
            ),
            photos: DataLoader::with_cache(
                crate::photos::PhotoLoader { db, tenant_id },
                tokio::spawn,
                HashMapCache::default(),
            ),
        }
    }
}

pub struct BranchLoader {
    db: Db,
    tenant_id: Option<Id>,
}

pub struct VehicleLoader {
    db: Db,
    tenant_id: Option<Id>,
}

pub struct DriverLoader {
    db: Db,
    tenant_id: Option<Id>,
}

/// The loader's error must be cloneable; it carries the stable code and the public message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    pub code: &'static str,
    pub message: String,
}

impl From<Error> for LoadError {
    fn from(e: Error) -> Self {
        if e.is_internal() {
            tracing::error!(error = ?e, "loader failed");
        }
        LoadError {
            code: e.code(),
            message: e.public_message(),
        }
    }
}

impl Loader<Id> for BranchLoader {
    type Value = BranchRow;
    type Error = LoadError;

    async fn load(&self, keys: &[Id]) -> Result<HashMap<Id, BranchRow>, LoadError> {
        let Some(tenant) = self.tenant_id else {
            return Ok(HashMap::new());
        };
        let mut c = self.db.conn().await.map_err(Error::from)?;
        let rows = db::branches_by_ids(&mut c, tenant, keys.to_vec()).await?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

impl Loader<Id> for VehicleLoader {
    type Value = VehicleRow;
    type Error = LoadError;

    async fn load(&self, keys: &[Id]) -> Result<HashMap<Id, VehicleRow>, LoadError> {
        let Some(tenant) = self.tenant_id else {
            return Ok(HashMap::new());
        };
        let mut c = self.db.conn().await.map_err(Error::from)?;
        let rows = db::vehicles_by_ids(&mut c, tenant, keys.to_vec()).await?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}

impl Loader<Id> for DriverLoader {
    type Value = DriverRow;
    type Error = LoadError;

    async fn load(&self, keys: &[Id]) -> Result<HashMap<Id, DriverRow>, LoadError> {
        let Some(tenant) = self.tenant_id else {
            return Ok(HashMap::new());
        };
        let mut c = self.db.conn().await.map_err(Error::from)?;
        let rows = db::drivers_by_ids(&mut c, tenant, keys.to_vec()).await?;
        Ok(rows.into_iter().map(|r| (r.id, r)).collect())
    }
}
