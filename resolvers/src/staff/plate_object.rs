//! Plate registrations as clients read them, and the queries that list them.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{
    audit_object::branch,
    plate::PlateRegistrationStatus,
    plate_db::{self, RegistrationRow},
};
use crate::{
    Error, Result,
    photos::{self, PhotoRole, RecordPhoto},
    registry::{
        Branch, Loaders, Vehicle,
        input::{parse_id, parse_opt_id},
        query::page_size,
    },
    viewer::{deps, viewer},
    workflow::{self, WorkflowStep},
};

/// A vehicle's plate registration and inspection (验车上牌).
pub struct PlateRegistration(pub RegistrationRow);

impl PlateRegistration {
    async fn photos_as(
        &self,
        ctx: &Context<'_>,
        role: PhotoRole,
    ) -> async_graphql::Result<Vec<RecordPhoto>> {
        Ok(photos::visible(ctx, self.0.id)
            .await?
            .into_iter()
            .filter(|p| p.role == role)
            .collect())
    }
}

#[Object]
impl PlateRegistration {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn status(&self) -> Option<PlateRegistrationStatus> {
        PlateRegistrationStatus::parse(&self.0.status)
    }
    /// The plate being registered.
    async fn plate(&self) -> &str {
        &self.0.plate
    }
    /// The vehicle's plate when it was submitted.
    async fn previous_plate(&self) -> &str {
        &self.0.previous_plate
    }
    async fn vehicle_id(&self) -> ID {
        ID(self.0.vehicle_id.to_string())
    }
    async fn vehicle(&self, ctx: &Context<'_>) -> async_graphql::Result<Vehicle> {
        ctx.data::<Loaders>()?
            .vehicles
            .load_one(self.0.vehicle_id)
            .await?
            .map(Vehicle)
            .ok_or_else(|| Error::NotFound("vehicle").into())
    }
    async fn branch(&self, ctx: &Context<'_>) -> async_graphql::Result<Branch> {
        branch(ctx, self.0.branch_id).await
    }
    /// What the submitter wrote.
    async fn note(&self) -> Option<&str> {
        self.0.note.as_deref()
    }
    /// Why it was rejected, once it is.
    async fn reject_reason(&self) -> Option<&str> {
        self.0.reject_reason.as_deref()
    }
    async fn submitted_by_id(&self) -> ID {
        ID(self.0.submitted_by.to_string())
    }
    /// Photos of the certificate, in the order given.
    async fn certificate_photos(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<RecordPhoto>> {
        self.photos_as(ctx, PhotoRole::Certificate).await
    }
    /// Photos of the inspection, in the order given.
    async fn inspection_photos(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<RecordPhoto>> {
        self.photos_as(ctx, PhotoRole::Inspection).await
    }
    /// Every step so far, oldest first: who moved it to which status, and when.
    async fn timeline(&self, ctx: &Context<'_>) -> Result<Vec<WorkflowStep>> {
        let mut c = deps(ctx)?.db.conn().await?;
        let mut steps = workflow::timelines(&mut c, vec![self.0.id]).await?;
        Ok(steps
            .remove(&self.0.id)
            .unwrap_or_default()
            .into_iter()
            .map(WorkflowStep::from)
            .collect())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

#[derive(Default)]
pub struct PlateQuery;

#[Object]
impl PlateQuery {
    /// Plate registrations, newest first: staff see their branch's, operators the company's
    /// (of one branch when given).
    async fn plate_registrations(
        &self,
        ctx: &Context<'_>,
        branch_id: Option<ID>,
        status: Option<PlateRegistrationStatus>,
        #[graphql(default = 50)] first: i32,
    ) -> Result<Vec<PlateRegistration>> {
        let v = viewer(ctx)?;
        let branch = v.branch_filter(parse_opt_id("branchId", branch_id.as_ref())?)?;
        let limit = page_size(first)?;
        let mut c = deps(ctx)?.db.conn().await?;
        Ok(plate_db::list(
            &mut c,
            v.tenant_id,
            branch,
            status.map(PlateRegistrationStatus::as_str),
            limit,
        )
        .await?
        .into_iter()
        .map(PlateRegistration)
        .collect())
    }

    /// One plate registration; another branch's (for staff) or company's is `NOT_FOUND`.
    async fn plate_registration(&self, ctx: &Context<'_>, id: ID) -> Result<PlateRegistration> {
        let v = viewer(ctx)?;
        let scope = v.registry_scope()?;
        let id = parse_id("id", &id)?;
        let mut c = deps(ctx)?.db.conn().await?;
        let row = plate_db::get(&mut c, v.tenant_id, id).await?;
        if scope.is_some_and(|own| own != row.branch_id) {
            return Err(Error::NotFound("plate registration"));
        }
        Ok(PlateRegistration(row))
    }
}
