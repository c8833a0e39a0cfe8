use async_graphql::{Context, ID, Object};
use minigate_store::{Conn, Id};

use super::{
    Branch, Driver, Vehicle, db,
    import::{self, ImportKind, ImportMode, ImportReport},
    input::{
        BranchInput, DriverInput, DriverPatch, VehicleInput, VehiclePatch, parse_id, parse_opt_id,
    },
};
use crate::{
    Error, Result, Viewer, audit, idempotency, validate,
    viewer::{deps, viewer},
};

#[derive(Default)]
pub struct RegistryMutation;

/// Vehicle values after validation, ready to store.
pub struct VehicleValues {
    pub branch_id: Id,
    pub plate: String,
    pub vin: String,
    pub model: Option<String>,
    pub status: &'static str,
}

impl VehicleValues {
    pub fn fields(&self) -> db::VehicleFields<'_> {
        db::VehicleFields {
            branch_id: self.branch_id,
            plate: &self.plate,
            vin: &self.vin,
            model: self.model.as_deref(),
            status: self.status,
        }
    }
}

pub fn check_model(model: Option<&str>) -> Result<Option<String>> {
    model
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| validate::name("model", m, 100))
        .transpose()
}

/// Driver values after validation.
pub struct DriverValues {
    pub branch_id: Id,
    pub vehicle_id: Option<Id>,
    pub name: String,
    pub phone: String,
    pub id_number: String,
}

impl DriverValues {
    pub fn fields(&self) -> db::DriverFields<'_> {
        db::DriverFields {
            branch_id: self.branch_id,
            vehicle_id: self.vehicle_id,
            name: &self.name,
            phone: &self.phone,
            id_number: &self.id_number,
        }
    }
}

async fn existing_branch(c: &mut Conn, tenant: Id, id: Id) -> Result<Id> {
    match db::get_branch(c, tenant, id).await {
        Ok(b) => Ok(b.id),
        Err(Error::NotFound(_)) => Err(Error::invalid("branchId", "no such branch")),
        Err(e) => Err(e),
    }
}

async fn existing_vehicle(c: &mut Conn, tenant: Id, id: Id) -> Result<Id> {
    match db::get_vehicle(c, tenant, id).await {
        Ok(v) => Ok(v.id),
        Err(Error::NotFound(_)) => Err(Error::invalid("vehicleId", "no such vehicle")),
        Err(e) => Err(e),
    }
}

/// A bound driver user follows their driver record to its new branch; their live
/// subscriptions are told to re-read what they may see.
async fn moved_to_branch(
    tx: &mut Conn,
    waker: &minigate_push::events::Waker,
    tenant: Id,
    driver: Id,
    branch: Id,
) -> Result<()> {
    let Some(user) = crate::auth::db::find_user_of_driver(tx, driver).await? else {
        return Ok(());
    };
    minigate_store::execute!(
        tx,
        "update app_user set branch_id = $1, updated_at = now() where id = $2",
        branch,
        user.id
    )?;
    minigate_push::events::enqueue(
        tx,
        waker,
        minigate_push::events::NewEvent {
            tenant_id: tenant,
            topic: minigate_push::events::topic::user(user.id),
            kind: crate::notice::USER_CHANGED,
            payload: serde_json::json!({ "branchId": branch }),
        },
    )
    .await?;
    Ok(())
}

async fn audited(
    c: &mut Conn,
    v: &Viewer,
    action: &str,
    entity: &str,
    id: Id,
    detail: serde_json::Value,
) -> Result<()> {
    audit::record(
        c,
        Some(v.tenant_id),
        Some(v.user_id),
        action,
        entity,
        &id.to_string(),
        detail,
    )
    .await
}

#[Object]
impl RegistryMutation {
    async fn create_branch(
        &self,
        ctx: &Context<'_>,
        input: BranchInput,
        idempotency_key: Option<String>,
    ) -> Result<Branch> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let code = validate::code("code", &input.code)?;
        let name = validate::name("name", &input.name, 100)?;
        let db_ = &deps(ctx)?.db;
        let id = idempotency::once(
            db_,
            v.user_id,
            idempotency_key.as_deref(),
            "createBranch",
            async |tx| {
                let id = db::insert_branch(tx, v.tenant_id, &code, &name).await?;
                audited(
                    tx,
                    v,
                    "branch.create",
                    "branch",
                    id,
                    serde_json::json!({ "code": code }),
                )
                .await?;
                Ok(id)
            },
        )
        .await?;
        let mut c = db_.conn().await?;
        Ok(Branch(db::get_branch(&mut c, v.tenant_id, id).await?))
    }

    async fn rename_branch(&self, ctx: &Context<'_>, id: ID, name: String) -> Result<Branch> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let id = parse_id("id", &id)?;
        let name = validate::name("name", &name, 100)?;
        let mut tx = deps(ctx)?.db.begin().await?;
        db::update_branch_name(&mut tx, v.tenant_id, id, &name).await?;
        audited(
            &mut tx,
            v,
            "branch.rename",
            "branch",
            id,
            serde_json::json!({ "name": name }),
        )
        .await?;
        let b = db::get_branch(&mut tx, v.tenant_id, id).await?;
        tx.commit().await?;
        Ok(Branch(b))
    }

    async fn create_vehicle(
        &self,
        ctx: &Context<'_>,
        input: VehicleInput,
        idempotency_key: Option<String>,
    ) -> Result<Vehicle> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let branch_id = parse_id("branchId", &input.branch_id)?;
        let plate = validate::plate(&input.plate)?;
        let vin = validate::vin(&input.vin)?;
        let model = check_model(input.model.as_deref())?;
        let db_ = &deps(ctx)?.db;
        let id = idempotency::once(
            db_,
            v.user_id,
            idempotency_key.as_deref(),
            "createVehicle",
            async |tx| {
                let values = VehicleValues {
                    branch_id: existing_branch(tx, v.tenant_id, branch_id).await?,
                    plate,
                    vin,
                    model,
                    status: input.status.as_str(),
                };
                let id = db::insert_vehicle(tx, v.tenant_id, &values.fields()).await?;
                audited(
                    tx,
                    v,
                    "vehicle.create",
                    "vehicle",
                    id,
                    serde_json::json!({ "plate": values.plate }),
                )
                .await?;
                Ok(id)
            },
        )
        .await?;
        let mut c = db_.conn().await?;
        Ok(Vehicle(db::get_vehicle(&mut c, v.tenant_id, id).await?))
    }

    async fn update_vehicle(
        &self,
        ctx: &Context<'_>,
        id: ID,
        patch: VehiclePatch,
    ) -> Result<Vehicle> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let id = parse_id("id", &id)?;
        let branch = parse_opt_id("branchId", patch.branch_id.as_ref())?;
        let plate = patch.plate.as_deref().map(validate::plate).transpose()?;
        let vin = patch.vin.as_deref().map(validate::vin).transpose()?;
        let model = patch
            .model
            .as_deref()
            .map(|m| check_model(Some(m)))
            .transpose()?;
        let mut tx = deps(ctx)?.db.begin().await?;
        let cur = db::get_vehicle(&mut tx, v.tenant_id, id).await?;
        let values = VehicleValues {
            branch_id: match branch {
                Some(b) => existing_branch(&mut tx, v.tenant_id, b).await?,
                None => cur.branch_id,
            },
            plate: plate.unwrap_or(cur.plate.clone()),
            vin: vin.unwrap_or(cur.vin.clone()),
            model: model.unwrap_or(cur.model.clone()),
            status: patch
                .status
                .map(super::VehicleStatus::as_str)
                .or_else(|| {
                    super::VehicleStatus::parse(&cur.status).map(super::VehicleStatus::as_str)
                })
                .unwrap_or("AVAILABLE"),
        };
        db::update_vehicle(&mut tx, v.tenant_id, id, &values.fields()).await?;
        audited(
            &mut tx,
            v,
            "vehicle.update",
            "vehicle",
            id,
            serde_json::json!({ "before": { "plate": cur.plate, "vin": cur.vin, "status": cur.status, "branch_id": cur.branch_id },
                                "after": { "plate": values.plate, "vin": values.vin, "status": values.status, "branch_id": values.branch_id } }),
        )
        .await?;
        let row = db::get_vehicle(&mut tx, v.tenant_id, id).await?;
        tx.commit().await?;
        Ok(Vehicle(row))
    }

    async fn create_driver(
        &self,
        ctx: &Context<'_>,
        input: DriverInput,
        idempotency_key: Option<String>,
    ) -> Result<Driver> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let branch_id = parse_id("branchId", &input.branch_id)?;
        let vehicle_id = parse_opt_id("vehicleId", input.vehicle_id.as_ref())?;
        let name = validate::name("name", &input.name, 50)?;
        let phone = validate::phone(&input.phone)?;
        let id_number = validate::id_number(&input.id_number)?;
        let db_ = &deps(ctx)?.db;
        let id = idempotency::once(
            db_,
            v.user_id,
            idempotency_key.as_deref(),
            "createDriver",
            async |tx| {
                let values = DriverValues {
                    branch_id: existing_branch(tx, v.tenant_id, branch_id).await?,
                    vehicle_id: match vehicle_id {
                        Some(x) => Some(existing_vehicle(tx, v.tenant_id, x).await?),
                        None => None,
                    },
                    name,
                    phone,
                    id_number,
                };
                let id = db::insert_driver(tx, v.tenant_id, &values.fields()).await?;
                audited(
                    tx,
                    v,
                    "driver.create",
                    "driver",
                    id,
                    serde_json::json!({ "name": values.name }),
                )
                .await?;
                Ok(id)
            },
        )
        .await?;
        let mut c = db_.conn().await?;
        Ok(Driver(db::get_driver(&mut c, v.tenant_id, id).await?))
    }

    async fn update_driver(&self, ctx: &Context<'_>, id: ID, patch: DriverPatch) -> Result<Driver> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        let id = parse_id("id", &id)?;
        let branch = parse_opt_id("branchId", patch.branch_id.as_ref())?;
        let vehicle = parse_opt_id("vehicleId", patch.vehicle_id.as_ref())?;
        let name = patch
            .name
            .as_deref()
            .map(|n| validate::name("name", n, 50))
            .transpose()?;
        let phone = patch.phone.as_deref().map(validate::phone).transpose()?;
        let id_number = patch
            .id_number
            .as_deref()
            .map(validate::id_number)
            .transpose()?;
        let mut tx = deps(ctx)?.db.begin().await?;
        let cur = db::get_driver(&mut tx, v.tenant_id, id).await?;
        let values = DriverValues {
            branch_id: match branch {
                Some(b) => existing_branch(&mut tx, v.tenant_id, b).await?,
                None => cur.branch_id,
            },
            vehicle_id: match (vehicle, patch.clear_vehicle) {
                (_, true) => None,
                (Some(x), false) => Some(existing_vehicle(&mut tx, v.tenant_id, x).await?),
                (None, false) => cur.vehicle_id,
            },
            name: name.unwrap_or(cur.name.clone()),
            phone: phone.unwrap_or(cur.phone.clone()),
            id_number: id_number.unwrap_or(cur.id_number.clone()),
        };
        db::update_driver(&mut tx, v.tenant_id, id, &values.fields()).await?;
        if values.branch_id != cur.branch_id {
            moved_to_branch(
                &mut tx,
                &deps(ctx)?.waker,
                v.tenant_id,
                id,
                values.branch_id,
            )
            .await?;
        }
        audited(
            &mut tx,
            v,
            "driver.update",
            "driver",
            id,
            serde_json::json!({ "branch_id": values.branch_id, "vehicle_id": values.vehicle_id,
                                "phone_changed": values.phone != cur.phone, "id_number_changed": values.id_number != cur.id_number }),
        )
        .await?;
        let row = db::get_driver(&mut tx, v.tenant_id, id).await?;
        tx.commit().await?;
        Ok(Driver(row))
    }

    /// Imports vehicles or drivers from CSV text (header row required; see the README). With
    /// `ALL_OR_NOTHING` one bad row rejects the whole file; with `SKIP_INVALID` the good rows are
    /// stored and the bad ones reported. Either way nothing is ever half-imported.
    async fn import_registry_csv(
        &self,
        ctx: &Context<'_>,
        kind: ImportKind,
        csv: String,
        #[graphql(default_with = "ImportMode::AllOrNothing")] mode: ImportMode,
        #[graphql(default)] dry_run: bool,
    ) -> Result<ImportReport> {
        let v = viewer(ctx)?;
        v.require_admin()?;
        import::run(
            &deps(ctx)?.db,
            v.tenant_id,
            Some(v.user_id),
            kind,
            csv.as_bytes(),
            import::Options { mode, dry_run },
            &mut |_| {},
        )
        .await
    }
}
