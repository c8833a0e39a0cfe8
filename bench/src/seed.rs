//! The benchmark's data: one tenant, a few branches, a couple of hundred vehicles, one operator.

use anyhow::Context;
use minigate_resolvers::{
    Role,
    auth::create_password_user,
    registry::db::{self as registry_db, VehicleFields},
    tenant::db as tenant_db,
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
        let plate = plate(n);
        let vin = vin(n);
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
/// five characters without I or O).
pub fn plate(n: usize) -> String {
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
    format!("粤{office}{}", String::from_utf8_lossy(&serial))
}

/// A distinct 17-character VIN with a correct ISO 3779 check digit in position 9.
pub fn vin(n: usize) -> String {
    let mut v: Vec<u8> = b"LSVAU2180N2000000".to_vec();
    let mut k = n;
    for slot in v[11..].iter_mut().rev() {
        *slot = b"0123456789"[k % 10];
        k /= 10;
    }
    v[3] = SERIAL[n % 23];
    v[8] = check_digit(&v);
    String::from_utf8_lossy(&v).into_owned()
}

fn transliterate(c: u8) -> u32 {
    match c {
        b'0'..=b'9' => u32::from(c - b'0'),
        b'A' | b'J' => 1,
        b'B' | b'K' | b'S' => 2,
        b'C' | b'L' | b'T' => 3,
        b'D' | b'M' | b'U' => 4,
        b'E' | b'N' | b'V' => 5,
        b'F' | b'W' => 6,
        b'G' | b'P' | b'X' => 7,
        b'H' | b'Y' => 8,
        _ => 9, // R, Z
    }
}

fn check_digit(v: &[u8]) -> u8 {
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let sum: u32 = v
        .iter()
        .zip(WEIGHTS)
        .map(|(&c, w)| transliterate(c) * w)
        .sum();
    match sum % 11 {
        10 => b'X',
        d => b"0123456789"[usize::try_from(d).unwrap_or(0)],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn generated_vins_carry_the_check_digit_of_known_examples() {
        // Known valid VINs keep their check digit when recomputed.
        for known in ["1M8GDM9AXKP042788", "LSVAU2180N2183294"] {
            let b = known.as_bytes();
            assert_eq!(check_digit(b), b[8], "{known}");
        }
    }

    #[test]
    fn plates_and_vins_are_distinct() {
        let plates: HashSet<String> = (0..VEHICLES).map(plate).collect();
        let vins: HashSet<String> = (0..VEHICLES).map(vin).collect();
        assert_eq!(plates.len(), VEHICLES);
        assert_eq!(vins.len(), VEHICLES);
        assert!(plates.iter().all(|p| p.chars().count() == 7));
        assert!(vins.iter().all(|v| v.len() == 17));
    }
}
