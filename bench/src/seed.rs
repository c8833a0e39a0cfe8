//! The benchmark's data: one tenant, a few branches, a couple of hundred vehicles, one operator.

use anyhow::Context;
use minigate_resolvers::{
    Role,
    auth::create_password_user,
    registry::db::{self as registry_db, VehicleFields},
    tenant::db as tenant_db,
    validate,
};
use minigate_store::{Db, Id};

pub const BRANCHES: usize = 5;
pub const VEHICLES: usize = 200;

/// How the benchmark signs in.
pub struct Login {
    pub tenant_slug: String,
    pub phone: String,
    pub password: String,
}

const BRANCH_NAMES: [&str; BRANCHES] = [
    "广州天河店",
    "深圳南山店",
    "佛山禅城店",
    "东莞南城店",
    "珠海香洲店",
];
const MODELS: [&str; 4] = [
    "BYD Qin PLUS",
    "Toyota Corolla",
    "VW Lavida",
    "Geely Emgrand",
];
const STATUSES: [&str; 4] = ["AVAILABLE", "RENTED", "MAINTENANCE", "RETIRED"];
/// Issuing-office letters of Guangdong plates used here.
const OFFICES: [char; 6] = ['A', 'B', 'C', 'E', 'S', 'T'];
/// The characters a plate serial and a VIN may use (no I, O; VINs also no Q).
const SERIAL: &[u8] = b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789";

/// Fills a fresh, migrated database.
pub async fn seed(db: &Db) -> anyhow::Result<Login> {
    let mut tx = db.begin().await?;
    let tenant = tenant_db::insert_tenant(&mut tx, "bench", "Bench Car Rental")
        .await
        .context("inserting the tenant")?;
    let mut branches: Vec<Id> = Vec::with_capacity(BRANCHES);
    for (n, name) in BRANCH_NAMES.iter().enumerate() {
        let code = format!("GD{:02}", n + 1);
        branches.push(
            registry_db::insert_branch(&mut tx, tenant.id, &code, name)
                .await
                .context("inserting a branch")?,
        );
    }
    for n in 0..VEHICLES {
        let plate = plate(n)?;
        let vin = vin(n)?;
        let model = (n % 10 != 9).then(|| MODELS[n % MODELS.len()]);
        registry_db::insert_vehicle(
            &mut tx,
            tenant.id,
            &VehicleFields {
                branch_id: branches[n % BRANCHES],
                plate: &plate,
                vin: &vin,
                model,
                status: STATUSES[(n / 3) % STATUSES.len()],
            },
        )
        .await
        .context("inserting a vehicle")?;
    }
    tx.commit().await?;

    let login = Login {
        tenant_slug: tenant.slug,
        phone: "13800138000".to_owned(),
        password: "bench-password-1".to_owned(),
    };
    create_password_user(
        db,
        tenant.id,
        None,
        Role::Admin,
        &login.phone,
        login.password.clone(),
        "运营 Bench",
        None,
    )
    .await
    .context("creating the operator")?;
    Ok(login)
}

/// A valid, distinct Guangdong plate for each `n` (a province character, an office letter, then
/// five characters without I or O), checked by minigate's own validator.
pub fn plate(n: usize) -> anyhow::Result<String> {
    let office = OFFICES[n % OFFICES.len()];
    // 7919 is prime to 10^5, so the serials of n < 10^5 are distinct.
    let mut k = (n * 7919) % 100_000;
    let mut serial = [b'0'; 5];
    for slot in serial.iter_mut().rev() {
        *slot = b"0123456789"[k % 10];
        k /= 10;
    }
    // A letter in the serial for a third of them, as on real new plates.
    if n.is_multiple_of(3) {
        serial[0] = SERIAL[n % 23];
    }
    let plate = format!("粤{office}{}", String::from_utf8_lossy(&serial));
    validate::plate(&plate).map_err(|e| anyhow::anyhow!("generated plate {plate}: {e}"))
}

/// A distinct 17-character VIN carrying its ISO 3779 check digit, from minigate's validator.
pub fn vin(n: usize) -> anyhow::Result<String> {
    let mut v: Vec<u8> = b"LSVAU2180N2000000".to_vec();
    let mut k = n;
    for slot in v[11..].iter_mut().rev() {
        *slot = b"0123456789"[k % 10];
        k /= 10;
    }
    v[3] = SERIAL[n % 23];
    let mut vin = String::from_utf8(v)?;
    let check = validate::vin_check_digit(&vin)
        .ok_or_else(|| anyhow::anyhow!("generated VIN {vin} has a forbidden character"))?;
    vin.replace_range(8..9, check.encode_utf8(&mut [0; 4]));
    validate::vin(&vin).map_err(|e| anyhow::anyhow!("generated VIN {vin}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn plates_and_vins_are_valid_and_distinct() {
        let plates: HashSet<String> = (0..VEHICLES).map(|n| plate(n).unwrap()).collect();
        let vins: HashSet<String> = (0..VEHICLES).map(|n| vin(n).unwrap()).collect();
        assert_eq!(plates.len(), VEHICLES);
        assert_eq!(vins.len(), VEHICLES);
    }
}
