//! `minigate serve | migrate | schema | tenant | branch | user | bill | reconcile | import`.

use std::{io::Write, net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use minigate_resolvers::{
    Role,
    auth::create_password_user,
    billing::{self, BillLine},
    registry::{db as registry_db, import},
    tenant::db as tenant_db,
};
use minigate_store::{Db, DbOptions, Id};

use crate::config::{Config, Mode};

#[derive(Parser)]
#[command(
    name = "minigate",
    version,
    about = "GraphQL and push gateway for WeChat mini-programs"
)]
pub struct Cli {
    /// A TOML configuration file (environment variables override it).
    #[arg(long, global = true, env = "MINIGATE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the service (the default).
    Serve {
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Production mode: no GraphiQL, no introspection for mobile clients, secrets required.
        #[arg(long)]
        production: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Write (or with --check, compare) the client contract: schema.graphql, error-codes.json.
    Schema {
        #[arg(long, default_value = "mobile-contracts")]
        out: PathBuf,
        #[arg(long)]
        check: bool,
    },
    #[command(subcommand)]
    Tenant(TenantCommand),
    #[command(subcommand)]
    Branch(BranchCommand),
    #[command(subcommand)]
    User(UserCommand),
    #[command(subcommand)]
    Bill(BillCommand),
    /// Reconcile a provider's trade bill of one business day (Asia/Shanghai) for a company; a
    /// new pass of that day's run if there was one. Exits 0 when done, 3 while the provider's
    /// bill is not ready, 1 when the bill was refused.
    Reconcile {
        #[arg(long, value_enum)]
        provider: ProviderArg,
        /// The company's slug.
        #[arg(long)]
        tenant: String,
        /// The business day, YYYY-MM-DD.
        #[arg(long)]
        date: chrono::NaiveDate,
    },
    /// Import vehicles, drivers or bills from a CSV file (see the README for the columns).
    Import {
        kind: ImportWhat,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        file: PathBuf,
        /// Store the good rows and report the bad ones (default: one bad row rejects the file).
        #[arg(long)]
        skip_invalid: bool,
        /// Check everything, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a company.
    Create {
        #[arg(long)]
        slug: String,
        #[arg(long)]
        name: String,
    },
    /// Register a mini-program or official account of a company.
    AddApp {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_enum, default_value = "miniprogram")]
        kind: AppKindArg,
        #[arg(long)]
        app_id: String,
        #[arg(long)]
        name: String,
        /// Where the app secret is read from: env:NAME or file:/absolute/path.
        #[arg(long)]
        secret_ref: String,
    },
    /// Development only: give a company simulated WeChat Pay and Alipay accounts with generated
    /// keys, played by the simulator built into `serve` (restart it to pick them up).
    SimulatePayments {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ProviderArg {
    Wechat,
    Alipay,
}

#[derive(Subcommand)]
pub enum BranchCommand {
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        code: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a staff member or operator who signs in with a password.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        phone: String,
        #[arg(long, env = "MINIGATE_USER_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Branch code (staff only).
        #[arg(long)]
        branch: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum BillCommand {
    /// Create a bill for a driver (by phone) or a named consumer; prints its id.
    Create {
        #[arg(long)]
        tenant: String,
        /// rent, deposit, fine or purchase.
        #[arg(long)]
        kind: String,
        #[arg(long)]
        title: String,
        /// The amount in yuan, at most two decimals: 1200.00.
        #[arg(long)]
        amount_yuan: String,
        /// The due date, YYYY-MM-DD (Asia/Shanghai).
        #[arg(long)]
        due: String,
        /// The paying driver's phone number.
        #[arg(
            long,
            required_unless_present = "payer_name",
            conflicts_with = "payer_name"
        )]
        driver_phone: Option<String>,
        /// The paying consumer's name (no driver record).
        #[arg(long)]
        payer_name: Option<String>,
        /// Branch code (a driver's bill is in the driver's branch).
        #[arg(long)]
        branch: Option<String>,
        /// The company's own number for the bill, unique in the company.
        #[arg(long)]
        reference: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ImportWhat {
    Vehicles,
    Drivers,
    Bills,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum AppKindArg {
    Miniprogram,
    OfficialAccount,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Staff,
}

fn out(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let state_free = config.clone();
    if let Some(path) = state_free.database_url.strip_prefix("sqlite:")
        && let Some(parent) = std::path::Path::new(path.trim_start_matches("//")).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    let db = Db::connect_lazy(&config.database_url, &DbOptions::default())?;
    db.migrate().await.context("applying migrations")?;
    Ok(db)
}

async fn tenant_id(db: &Db, slug: &str) -> anyhow::Result<Id> {
    let mut c = db.conn().await?;
    Ok(tenant_db::find_tenant_by_slug(&mut c, slug)
        .await?
        .with_context(|| format!("no tenant '{slug}'"))?
        .id)
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref())?;
    crate::logging::init(&config.log_format);
    let command = cli.command.unwrap_or(Command::Serve {
        listen: None,
        production: false,
    });
    match command {
        Command::Serve { listen, production } => {
            if let Some(l) = listen {
                config.listen = l;
            }
            if production {
                config.mode = Mode::Production;
            }
            config.check()?;
            // Bound first, so the address the providers call back (and the simulator answers
            // on) is the real one when listening on port 0.
            let (acceptor, addr) = crate::app::bind(config.listen).await?;
            config.listen = addr;
            let state = crate::app::build(config.clone()).await?;
            tracing::info!(%addr, mode = ?config.mode, database = state.db.backend().name(), redis = state.redis.is_some(), "minigate listening");
            crate::app::serve(state, acceptor, shutdown_signal()).await?;
            tracing::info!("stopped");
        }
        Command::Migrate => {
            open_db(&config).await?;
            out("migrations applied");
        }
        Command::Schema { out: dir, check } => return contract(&dir, check),
        Command::Tenant(TenantCommand::Create { slug, name }) => {
            let db = open_db(&config).await?;
            let mut c = db.conn().await?;
            let t = tenant_db::insert_tenant(&mut c, &slug, &name).await?;
            out(&format!("tenant {} created: {}", t.slug, t.id));
        }
        Command::Tenant(TenantCommand::AddApp {
            tenant,
            kind,
            app_id,
            name,
            secret_ref,
        }) => {
            let db = open_db(&config).await?;
            let id = tenant_id(&db, &tenant).await?;
            let kind = match kind {
                AppKindArg::Miniprogram => tenant_db::MINIPROGRAM,
                AppKindArg::OfficialAccount => tenant_db::OFFICIAL_ACCOUNT,
            };
            let mut tx = db.begin().await?;
            let app = tenant_db::upsert_app(&mut tx, id, kind, &app_id, &name, &secret_ref).await?;
            tx.commit().await?;
            out(&format!(
                "app {} ({}) registered for {tenant}",
                app.app_id, app.kind
            ));
        }
        Command::Tenant(TenantCommand::SimulatePayments { tenant }) => {
            let db = open_db(&config).await?;
            let id = tenant_id(&db, &tenant).await?;
            let dir = crate::simulator::provision(&config, &db, &tenant, id).await?;
            out(&format!(
                "{tenant} pays through the simulator; development keys in {}",
                dir.display()
            ));
        }
        Command::Branch(BranchCommand::Create { tenant, code, name }) => {
            let db = open_db(&config).await?;
            let id = tenant_id(&db, &tenant).await?;
            let mut c = db.conn().await?;
            let b = registry_db::insert_branch(&mut c, id, code.trim(), name.trim()).await?;
            out(&format!("branch {code} created: {b}"));
        }
        Command::User(UserCommand::Create {
            tenant,
            role,
            phone,
            password,
            name,
            branch,
        }) => {
            let db = open_db(&config).await?;
            let tid = tenant_id(&db, &tenant).await?;
            let branch_id = match branch {
                Some(code) => {
                    let mut c = db.conn().await?;
                    let all = registry_db::list_branches(&mut c, tid, None).await?;
                    Some(
                        all.into_iter()
                            .find(|b| b.code == code)
                            .with_context(|| format!("no branch '{code}'"))?
                            .id,
                    )
                }
                None => None,
            };
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Staff => Role::Staff,
            };
            let display = if name.is_empty() { phone.clone() } else { name };
            let id =
                create_password_user(&db, tid, None, role, &phone, password, &display, branch_id)
                    .await?;
            out(&format!("user {id} created ({})", role.as_str()));
        }
        Command::Bill(BillCommand::Create {
            tenant,
            kind,
            title,
            amount_yuan,
            due,
            driver_phone,
            payer_name,
            branch,
            reference,
        }) => {
            let db = open_db(&config).await?;
            let tid = tenant_id(&db, &tenant).await?;
            let line = BillLine {
                reference: reference.as_deref(),
                kind: &kind,
                title: &title,
                amount_yuan: &amount_yuan,
                due_date: &due,
                driver_phone: driver_phone.as_deref(),
                payer_name: payer_name.as_deref(),
                branch_code: branch.as_deref(),
            };
            let bill = billing::create_from_line(&db, tid, None, &line).await?;
            out(&format!("bill created: {}", bill.id));
        }
        Command::Reconcile {
            provider,
            tenant,
            date,
        } => {
            config.check()?;
            let state = crate::app::build(config.clone()).await?;
            let tid = tenant_id(&state.db, &tenant).await?;
            return reconcile(&state.deps, tid, provider, date).await;
        }
        Command::Import {
            kind,
            tenant,
            file,
            skip_invalid,
            dry_run,
        } => {
            let db = open_db(&config).await?;
            let tid = tenant_id(&db, &tenant).await?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            return import_file(&db, tid, kind, &bytes, skip_invalid, dry_run).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn reconcile(
    deps: &minigate_resolvers::Deps,
    tenant: Id,
    provider: ProviderArg,
    date: chrono::NaiveDate,
) -> anyhow::Result<ExitCode> {
    use minigate_payments::notification::Provider;
    use minigate_resolvers::reconcile::{self, Stage};
    let provider = match provider {
        ProviderArg::Wechat => Provider::Wechat,
        ProviderArg::Alipay => Provider::Alipay,
    };
    let bar = ProgressBar::new_spinner();
    bar.set_message(format!(
        "downloading the {} bill of {date}",
        provider.as_str()
    ));
    bar.enable_steady_tick(Duration::from_millis(120));
    let shown = bar.clone();
    let progress = move |stage: Stage| match stage {
        Stage::Downloading => {}
        Stage::Checked { rows } => {
            shown.set_length(rows);
            shown.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} rows matched ({per_sec}) {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            shown.set_message("");
        }
        Stage::Matching { done } => shown.set_position(done),
        Stage::Finishing => shown.set_message("looking for what the bill lacks"),
    };
    let run = reconcile::reconcile(deps, tenant, provider, date, &progress).await?;
    bar.finish_and_clear();
    out(&format!(
        "run {} ({} {}, pass {}): {}",
        run.id, run.provider, run.bill_date, run.passes, run.status
    ));
    match run.status.as_str() {
        "DONE" => {
            out(&format!(
                "{} payments ({} fen), {} refunds ({} fen), fee {} millifen; {} differences, {} repaired",
                run.payment_count,
                run.payment_fen,
                run.refund_count,
                run.refund_fen,
                run.fee_millifen,
                run.difference_count,
                run.repaired_count
            ));
            Ok(ExitCode::SUCCESS)
        }
        "WAITING" => {
            out("the provider has not published this bill yet; the daily job tries again");
            Ok(ExitCode::from(3))
        }
        _ => {
            out(&format!(
                "{}: {}",
                run.error_code.as_deref().unwrap_or("FAILED"),
                run.error_detail.as_deref().unwrap_or("")
            ));
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn import_file(
    db: &Db,
    tenant: Id,
    kind: ImportWhat,
    bytes: &[u8],
    skip_invalid: bool,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} rows [{bar:30}] {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let opts = import::Options {
        mode: if skip_invalid {
            import::ImportMode::SkipInvalid
        } else {
            import::ImportMode::AllOrNothing
        },
        dry_run,
    };
    let mut progress = |p: import::Progress| {
        bar.set_length(u64::try_from(p.total).unwrap_or(0));
        bar.set_position(u64::try_from(p.done).unwrap_or(0));
    };
    let report = match kind {
        ImportWhat::Vehicles => {
            let k = import::ImportKind::Vehicles;
            import::run(db, tenant, None, k, bytes, opts, &mut progress).await?
        }
        ImportWhat::Drivers => {
            let k = import::ImportKind::Drivers;
            import::run(db, tenant, None, k, bytes, opts, &mut progress).await?
        }
        ImportWhat::Bills => {
            billing::import::run(db, tenant, None, bytes, opts, &mut progress).await?
        }
    };
    bar.finish_and_clear();
    for r in &report.rejected {
        out(&format!(
            "line {}: {} {}{}",
            r.line,
            r.code,
            r.field
                .as_deref()
                .map(|f| format!("{f}: "))
                .unwrap_or_default(),
            r.message
        ));
    }
    out(&format!(
        "{} rows: {} inserted, {} updated, {} unchanged, {} rejected; {}",
        report.total_rows,
        report.inserted,
        report.updated,
        report.unchanged,
        report.rejected.len(),
        if report.applied {
            "applied"
        } else {
            "nothing written"
        }
    ));
    Ok(if report.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn contract(dir: &std::path::Path, check: bool) -> anyhow::Result<ExitCode> {
    let files = crate::contract_files()?;
    if check {
        let mut stale = Vec::new();
        for (name, content) in &files {
            let on_disk = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            if &on_disk != content {
                stale.push(*name);
            }
        }
        if !stale.is_empty() {
            bail!(
                "{} out of date; run `cargo run -p minigate-gateway -- schema`",
                stale.join(", ")
            );
        }
        out("contract up to date");
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(dir)?;
    for (name, content) in files {
        std::fs::write(dir.join(name), content)?;
        out(&format!("wrote {}", dir.join(name).display()));
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
