//! Search benchmark: `minigate_resolvers::search::find` over 1,000,000 reports on PostgreSQL,
//! p50 / p99 / max per class of query, as an operator (the whole company) and as a staff member
//! of one branch.
//!
//! ```text
//! cargo run --release -p minigate-bench --bin search -- --database-url postgres://…
//!     [--docs 1000000] [--rounds 10] [--database minigate_bench_search] [--reload] [--out FILE]
//! ```
//!
//! The reports go into a database of their own on that server (`--database`, created when
//! missing), kept between runs: loading takes minutes, so a later run with the same `--docs`
//! measures the same rows again (`--reload` loads them anew). They are generated from phrase
//! templates (accidents, maintenance, follow-ups, notices over three years, ten branches, 3,000
//! drivers) whose choices are skewed, so a few words are in a large share of all reports (车辆,
//! 检查, 司机) and most are rare; plates and numbers make many words unique. Each report is
//! segmented by `search::index_tokens`, the function `search::index` uses, and written with
//! `COPY` (the search indexes are dropped during the load and created again from their own
//! definitions, then `vacuum analyze`).
//!
//! Each query of each class runs once unmeasured, then `--rounds` times as each viewer, one at
//! a time, timed from the call to `find` to its answer (segmenting the query, the synonym
//! version check, the statements, snippets and highlighting: everything but GraphQL and HTTP).

#[allow(dead_code, reason = "shared with the other benchmarks")]
#[path = "../cpu.rs"]
mod cpu;
#[path = "../publish.rs"]
mod publish;
#[allow(dead_code, reason = "shared with the other benchmarks")]
#[path = "../stats.rs"]
mod stats;

use std::{
    fmt::Write as _,
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use chrono::{DateTime, TimeZone, Utc};
use clap::Parser;
use minigate_resolvers::{
    Role, Viewer,
    search::{self, SearchArgs},
};
use minigate_store::{Db, DbOptions, Id, testing::with_database};
use sqlx::{Connection, PgConnection};

use crate::stats::{count_f64, percentile};

#[derive(Parser, Debug)]
#[command(
    name = "search",
    about = "Search over generated fleet reports on PostgreSQL: latency per class of query"
)]
struct Args {
    /// A PostgreSQL server (`postgres://user@host:port/db`); the reports go into a database of
    /// their own on it.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// The benchmark's database on that server, created when missing and kept.
    #[arg(long, default_value = "minigate_bench_search")]
    database: String,
    /// Reports to load.
    #[arg(long, default_value_t = 1_000_000)]
    docs: usize,
    /// Timed runs of each query as each viewer, after one unmeasured run.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Load the reports again even when the database already has them.
    #[arg(long)]
    reload: bool,
    /// Also write the report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also print each query's slowest run and its hits.
    #[arg(long)]
    per_query: bool,
}

/// Bumped whenever the generator changes, so a kept database is loaded again.
const GENERATOR: &str = "search bench v4";
const BRANCHES: usize = 10;
const DRIVERS: usize = 3_000;
/// Rows per `COPY` chunk handed from the generating threads to the writer.
const CHUNK: usize = 5_000;

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("search bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let Some(url) = args.database_url.as_deref() else {
        bail!("this benchmark needs PostgreSQL: --database-url postgres://… (or DATABASE_URL)");
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!("--database-url must be a postgres:// URL");
    }
    if args.docs < 1_000 || args.rounds == 0 {
        bail!("--docs must be at least 1000, --rounds at least 1");
    }
    if !args
        .database
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        bail!("--database: lower-case letters, digits and _ only");
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (db, company, load) = prepare(url, args).await?;
        let results = measure(&db, &company, args).await?;
        let facts = facts(&db).await?;
        db.close().await;
        let report = render(args, cores, &load, &facts, &results);
        publish::publish(&report, args.out.as_deref())
    })
}

// ---------------------------------------------------------------------------------------------
// The database and its reports.

/// The company the reports belong to, and who searches.
struct Company {
    tenant: Id,
    admin: Viewer,
    staff: Viewer,
}

/// How the reports got there.
enum Load {
    Kept,
    Loaded {
        generate_and_copy: Duration,
        index: Duration,
        vacuum: Duration,
    },
}

async fn prepare(url: &str, args: &Args) -> anyhow::Result<(Db, Company, Load)> {
    let marker = format!("{GENERATOR}, {} reports", args.docs);
    let mut admin = PgConnection::connect(url).await.context("connecting")?;
    let exists: Option<i32> = sqlx::query_scalar("select 1 from pg_database where datname = $1")
        .bind(&args.database)
        .fetch_optional(&mut admin)
        .await?;
    let bench_url = with_database(url, &args.database);
    if exists.is_some() && !args.reload {
        let db = Db::connect_lazy(&bench_url, &DbOptions::default())?;
        db.migrate().await?;
        if let Some(company) = company(&db, &marker).await? {
            eprintln!("using the reports already in {}", args.database);
            return Ok((db, company, Load::Kept));
        }
        db.close().await;
    }
    let drop = format!("drop database if exists {} with (force)", args.database);
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await?;
    let create = format!("create database {}", args.database);
    sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let db = Db::connect_lazy(&bench_url, &DbOptions::default())?;
    db.migrate().await?;
    let load = load(&db, &bench_url, args.docs, &marker).await?;
    let company = company(&db, &marker)
        .await?
        .context("the company just loaded is missing")?;
    Ok((db, company, load))
}

/// The company of a complete load (its name is written last), with its operator and the staff
/// member of its first branch.
async fn company(db: &Db, marker: &str) -> anyhow::Result<Option<Company>> {
    let Db::Postgres(pool) = db else {
        bail!("not PostgreSQL");
    };
    let Some(tenant): Option<Id> =
        sqlx::query_scalar("select id from tenant where slug = 'search-bench' and name = $1")
            .bind(marker)
            .fetch_optional(pool)
            .await?
    else {
        return Ok(None);
    };
    let user = |role: &'static str| {
        sqlx::query_as::<_, (Id, Option<Id>)>(
            "select u.id, u.branch_id from app_user u left join branch b on b.id = u.branch_id
             where u.tenant_id = $1 and u.role = $2 order by b.code nulls first limit 1",
        )
        .bind(tenant)
        .bind(role)
        .fetch_one(pool)
    };
    let (admin, _) = user("admin").await?;
    let (staff, branch) = user("staff").await?;
    let viewer = |user_id, role, branch_id| Viewer {
        user_id,
        tenant_id: tenant,
        role,
        branch_id,
        driver_id: None,
        session_id: Id::new(),
    };
    Ok(Some(Company {
        tenant,
        admin: viewer(admin, Role::Admin, None),
        staff: viewer(staff, Role::Staff, branch),
    }))
}

async fn load(db: &Db, url: &str, docs: usize, marker: &str) -> anyhow::Result<Load> {
    let Db::Postgres(pool) = db else {
        bail!("not PostgreSQL");
    };
    let tenant = Id::new();
    sqlx::query("insert into tenant (id, slug, name) values ($1, 'search-bench', 'loading')")
        .bind(tenant)
        .execute(pool)
        .await?;
    let mut branches = Vec::with_capacity(BRANCHES);
    for b in 0..BRANCHES {
        let id = Id::new();
        sqlx::query("insert into branch (id, tenant_id, code, name) values ($1, $2, $3, $4)")
            .bind(id)
            .bind(tenant)
            .bind(format!("B{b:02}"))
            .bind(DISTRICTS[b % DISTRICTS.len()])
            .execute(pool)
            .await?;
        branches.push(id);
    }
    let admin = Id::new();
    sqlx::query("insert into app_user (id, tenant_id, role) values ($1, $2, 'admin')")
        .bind(admin)
        .bind(tenant)
        .execute(pool)
        .await?;
    let mut staff = Vec::with_capacity(BRANCHES);
    for b in &branches {
        let id = Id::new();
        sqlx::query(
            "insert into app_user (id, tenant_id, role, branch_id) values ($1, $2, 'staff', $3)",
        )
        .bind(id)
        .bind(tenant)
        .bind(b)
        .execute(pool)
        .await?;
        staff.push(id);
    }
    let drivers: Vec<Id> = (0..DRIVERS).map(|_| Id::new()).collect();

    // Indexes are built once after the load, from their own definitions.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "select indexname::text, indexdef from pg_indexes
         where tablename = 'search_doc' and indexname <> 'search_doc_pkey'",
    )
    .fetch_all(pool)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(sqlx::AssertSqlSafe(format!("drop index {name}")))
            .execute(pool)
            .await?;
    }

    let started = Instant::now();
    let people = People {
        tenant,
        branches,
        staff,
        admin,
        drivers,
    };
    copy_reports(url, people, docs).await?;
    let generate_and_copy = started.elapsed();

    let started = Instant::now();
    let mut conn = PgConnection::connect(url).await?;
    sqlx::query("set maintenance_work_mem = '1GB'")
        .execute(&mut conn)
        .await?;
    for (_, def) in &indexes {
        sqlx::query(sqlx::AssertSqlSafe(def.clone()))
            .execute(&mut conn)
            .await?;
    }
    let index = started.elapsed();
    let started = Instant::now();
    sqlx::query("vacuum analyze search_doc")
        .execute(&mut conn)
        .await?;
    let vacuum = started.elapsed();
    conn.close().await?;
    sqlx::query("update tenant set name = $2 where id = $1")
        .bind(tenant)
        .bind(marker)
        .execute(pool)
        .await?;
    Ok(Load::Loaded {
        generate_and_copy,
        index,
        vacuum,
    })
}

struct People {
    tenant: Id,
    branches: Vec<Id>,
    staff: Vec<Id>,
    admin: Id,
    drivers: Vec<Id>,
}

/// Generates and segments the reports on every core, in chunks copied in the order of their
/// time (as reports arrive, so the table's physical order follows `created_at`).
async fn copy_reports(url: &str, people: People, docs: usize) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunks = docs.div_ceil(CHUNK);
    let people = Arc::new(people);
    let mut receivers = Vec::with_capacity(threads);
    let mut workers = Vec::with_capacity(threads);
    for t in 0..threads {
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(2);
        receivers.push(rx);
        let people = Arc::clone(&people);
        workers.push(std::thread::spawn(move || {
            for chunk in (t..chunks).step_by(threads) {
                let from = chunk * CHUNK;
                let to = (from + CHUNK).min(docs);
                let mut buf = Vec::with_capacity(CHUNK * 700);
                for n in from..to {
                    copy_line(&mut buf, &people, n, docs);
                }
                if tx.blocking_send(buf).is_err() {
                    return;
                }
            }
        }));
    }
    let mut conn = PgConnection::connect(url).await?;
    let mut copy = conn
        .copy_in_raw(
            "copy search_doc (id, tenant_id, kind, branch_id, owner_id, restricted, title, body,
                 tokens, created_at, updated_at) from stdin",
        )
        .await?;
    for chunk in 0..chunks {
        let rows = receivers[chunk % threads]
            .recv()
            .await
            .context("a generating thread stopped")?;
        copy.send(rows).await?;
        if (chunk + 1) % 20 == 0 {
            eprintln!(
                "  {} of {docs} reports copied",
                ((chunk + 1) * CHUNK).min(docs)
            );
        }
    }
    let written = copy.finish().await?;
    conn.close().await?;
    for w in workers {
        w.join()
            .map_err(|_| anyhow::anyhow!("a generating thread panicked"))?;
    }
    if usize::try_from(written)? != docs {
        bail!("copied {written} reports, expected {docs}");
    }
    Ok(())
}

/// Report `n` of `total` as one line of `COPY` text.
fn copy_line(buf: &mut Vec<u8>, p: &People, n: usize, total: usize) {
    let mut r = Rng::new(n);
    let report = generate(&mut r);
    let branch = r.below(BRANCHES);
    let (branch_id, owner) = match report.kind {
        "NOTICE" if r.chance(60) => (None, Some(p.admin)),
        "NOTICE" => (Some(p.branches[branch]), Some(p.admin)),
        "FOLLOW_UP" => (Some(p.branches[branch]), Some(p.staff[branch])),
        _ => (
            Some(p.branches[branch]),
            Some(p.drivers[r.below(p.drivers.len())]),
        ),
    };
    let tokens = search::index_tokens(&report.title, &report.body);
    let at = created_at(n, total).to_rfc3339();
    let id = Id::new().to_string();
    let tenant = p.tenant.to_string();
    let branch_id = branch_id.map(|b| b.to_string());
    let owner = owner.map(|o| o.to_string());
    let fields: [Option<&str>; 11] = [
        Some(&id),
        Some(&tenant),
        Some(report.kind),
        branch_id.as_deref(),
        owner.as_deref(),
        Some("f"),
        Some(&report.title),
        Some(&report.body),
        Some(&tokens),
        Some(&at),
        Some(&at),
    ];
    for (k, f) in fields.iter().enumerate() {
        if k > 0 {
            buf.push(b'\t');
        }
        match f {
            None => buf.extend_from_slice(b"\\N"),
            Some(s) => {
                for b in s.bytes() {
                    match b {
                        b'\\' => buf.extend_from_slice(b"\\\\"),
                        b'\t' => buf.extend_from_slice(b"\\t"),
                        b'\n' => buf.extend_from_slice(b"\\n"),
                        b'\r' => buf.extend_from_slice(b"\\r"),
                        _ => buf.push(b),
                    }
                }
            }
        }
    }
    buf.push(b'\n');
}

/// Three years of reports, evenly spread, the last one at the start of 2026-11-22.
fn created_at(n: usize, total: usize) -> DateTime<Utc> {
    let end = Utc
        .with_ymd_and_hms(2026, 11, 22, 0, 0, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let span_secs: i64 = 3 * 365 * 24 * 3600;
    let back =
        i64::try_from(total - 1 - n).unwrap_or(0) * span_secs / i64::try_from(total).unwrap_or(1);
    end - chrono::Duration::seconds(back)
}

// ---------------------------------------------------------------------------------------------
// The reports' text.

/// A deterministic generator per report (SplitMix64), so a report is the same in every run.
struct Rng(u64);

impl Rng {
    fn new(n: usize) -> Self {
        Rng(u64::try_from(n)
            .unwrap_or(0)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ 0x5EED)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        let n64 = u64::try_from(n.max(1)).unwrap_or(u64::MAX);
        usize::try_from(self.next() % n64).unwrap_or(0)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// Skewed towards the front: the first entries of a list are chosen far more often than
    /// the last (about as often as the square of a uniform draw puts them there).
    fn skewed<'a>(&mut self, list: &[&'a str]) -> &'a str {
        let a = self.below(list.len());
        let b = self.below(list.len());
        list[a.min(b)]
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
}

struct Report {
    kind: &'static str,
    title: String,
    body: String,
}

const DISTRICTS: &[&str] = &[
    "南山区",
    "福田区",
    "宝安区",
    "龙岗区",
    "龙华区",
    "罗湖区",
    "光明区",
    "坪山区",
    "天河区",
    "白云区",
    "番禺区",
    "海珠区",
];
const ROADS: &[&str] = &[
    "深南大道",
    "北环大道",
    "宝安大道",
    "滨海大道",
    "科技园路口",
    "机场路",
    "梅林关",
    "红荔路",
    "民治大道",
    "布吉路",
    "沙河西路",
    "广深高速",
    "机荷高速",
    "南坪快速",
    "新洲路",
    "皇岗路",
    "留仙大道",
    "福龙路",
    "龙岗大道",
    "沿江高速",
    "环城高速",
    "天河路",
    "中山大道",
    "黄埔大道",
    "白石路",
    "侨香路",
    "梅观高速",
    "清平高速",
];
const TIMES: &[&str] = &[
    "今天",
    "早上",
    "晚上",
    "下午",
    "早高峰",
    "晚高峰",
    "凌晨",
    "中午",
    "昨天晚上",
    "收车的时候",
    "出车的时候",
    "送完客回来",
];
const OTHERS: &[&str] = &[
    "私家车",
    "出租车",
    "货车",
    "电动车",
    "泥头车",
    "公交车",
    "面包车",
    "网约车",
    "摩托车",
    "快递车",
    "大巴",
    "外卖电动车",
];
const EVENTS: &[&str] = &[
    "被后车追尾了",
    "跟一辆{o}剐蹭了",
    "和{o}相撞",
    "被一辆{o}蹭了一下",
    "倒车的时候撞到柱子",
    "右后轮爆胎",
    "变道时跟{o}擦碰",
    "等红灯被{o}撞了车尾",
    "撞上了路边的护栏",
    "前挡风玻璃被石子打裂",
    "左后视镜被{o}刮掉了",
    "掉头时和{o}碰上了",
    "被{o}顶了车尾",
    "停在路边被{o}刮花了车门",
    "开门时撞到{o}",
    "轮胎扎钉漏气",
];
const DAMAGE: &[&str] = &[
    "车辆还能开",
    "后保险杠裂了",
    "人没事",
    "车门凹了一块",
    "漆掉了一块",
    "左前大灯碎了",
    "车尾变形",
    "前杠掉了",
    "乘客受了轻伤",
    "轮毂磨坏了",
    "叶子板凹陷",
    "安全气囊弹出",
    "水箱撞漏了",
];
const HANDLING: &[&str] = &[
    "已拍照上传",
    "交警到场处理",
    "报了保险等定损",
    "双方协商私了",
    "对方全责",
    "我方全责",
    "叫了拖车",
    "对方赔了{n}元",
    "等事故认定书",
    "已经通知门店",
    "司机已回门店",
    "保险公司说明天来定损",
];
const SERVICES: &[&str] = &[
    "做了小保养，换机油和机滤",
    "常规保养",
    "换了前刹车片",
    "换了电瓶",
    "四条轮胎都换了",
    "空调不制冷，加了冷媒",
    "做了四轮定位",
    "发动机故障灯亮了，检查是氧传感器",
    "年检通过了",
    "刹车有异响，打磨了刹车盘",
    "变速箱油换了",
    "雨刮片换了一对",
    "底盘有怪声，换了摆臂胶套",
    "水温高，换了节温器",
    "油底壳渗油，换了垫片",
    "补了一个胎",
    "大灯不亮，换了灯泡",
    "方向盘打死有咔咔响，换了外球笼",
    "蓄电池亏电，充了电",
    "后杠修复喷漆",
];
const SHOPS: &[&str] = &[
    "合作修理厂",
    "4S店",
    "快修店",
    "轮胎店",
    "门店",
    "检测站",
    "服务站",
];
const FOLLOW_UPS: &[&str] = &[
    "本周租金还没交，已经电话提醒",
    "司机申请退车，已登记",
    "押金退还已提交财务审核",
    "有{k}条违章没处理，提醒一周内处理完",
    "平台账号被封了，协助申诉",
    "车辆超过保养里程还没去保养，已催",
    "事故理赔进度：保险公司审核中",
    "司机反映车辆有异响，约了明天进厂检查",
    "租金逾期{k}天，按合同发了催缴通知",
    "司机续租一年",
    "驾照扣了{k}分，安排学习",
    "新司机入职培训完成，明天提车",
    "乘客投诉车内有异味，要求清洁",
    "车辆年审快到期，已经预约检测站",
];
const NOTICES: &[(&str, &str)] = &[
    (
        "交租提醒",
        "每周一是交租日，请在当天晚上十点前通过小程序交周租，逾期将产生滞纳金",
    ),
    (
        "台风预警",
        "台风预计明天登陆，请各位司机注意安全，车辆停放在地势高的地方",
    ),
    (
        "年检通知",
        "本月到期的营运车辆请在25号前完成年审，逾期将影响运营资格",
    ),
    (
        "安全提示",
        "近期追尾事故多发，请保持安全车距，不要边开车边看手机",
    ),
    (
        "违章处理提醒",
        "公司车辆的违章请在十五天内处理完毕，逾期未处理的将从押金中扣除",
    ),
    (
        "保养提醒",
        "请按保养手册按时保养，超过保养里程三千公里的车辆将暂停派单",
    ),
    ("充电站通知", "门店新装了快充桩，新能源车司机可以免费充电"),
    (
        "培训通知",
        "本周四下午在门店开安全培训会，请没参加过的司机参加",
    ),
];
const SURNAMES: &[&str] = &[
    "陈", "李", "王", "张", "刘", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭", "何", "高",
    "林", "罗", "郑", "梁",
];
const PLATE_LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";

fn plate(r: &mut Rng) -> String {
    let mut p = String::from(if r.chance(85) { "粤B·" } else { "粤A·" });
    for k in 0..5 {
        if k == 0 && r.chance(30) {
            p.push(char::from(PLATE_LETTERS[r.below(PLATE_LETTERS.len())]));
        } else {
            p.push(char::from(b'0' + u8::try_from(r.below(10)).unwrap_or(0)));
        }
    }
    p
}

fn fill(template: &str, r: &mut Rng) -> String {
    let mut s = template.to_owned();
    if s.contains("{o}") {
        s = s.replace("{o}", r.skewed(OTHERS));
    }
    if s.contains("{n}") {
        s = s.replace("{n}", &(100 * (1 + r.below(30))).to_string());
    }
    if s.contains("{k}") {
        s = s.replace("{k}", &(1 + r.below(6)).to_string());
    }
    s
}

fn generate(r: &mut Rng) -> Report {
    let roll = r.below(100);
    if roll < 40 {
        let plate = plate(r);
        let mut body = format!(
            "{}在{}{}{}",
            r.skewed(TIMES),
            r.skewed(DISTRICTS),
            r.skewed(ROADS),
            fill(r.skewed(EVENTS), r)
        );
        for _ in 0..1 + r.below(3) {
            body.push('，');
            body.push_str(&fill(
                if r.chance(50) {
                    r.skewed(DAMAGE)
                } else {
                    r.skewed(HANDLING)
                },
                r,
            ));
        }
        if r.chance(30) {
            let _ = write!(body, "，车牌{plate}");
        }
        Report {
            kind: "ACCIDENT",
            title: format!("{plate} 事故"),
            body,
        }
    } else if roll < 75 {
        let plate = plate(r);
        let km = 1_000 * (1 + r.below(200));
        let mut body = format!("跑到{km}公里，在{}{}", r.skewed(SHOPS), r.skewed(SERVICES));
        if r.chance(50) {
            body.push('，');
            body.push_str(r.skewed(SERVICES));
        }
        let _ = write!(body, "，花了{}元", 50 * (1 + r.below(60)));
        if r.chance(40) {
            body.push_str("，检查车辆没有其他问题");
        }
        Report {
            kind: "MAINTENANCE",
            title: format!("{plate} 保养"),
            body,
        }
    } else if roll < 95 {
        let name = format!("{}师傅", r.pick(SURNAMES));
        let mut body = format!("{name}：{}", fill(r.skewed(FOLLOW_UPS), r));
        if r.chance(40) {
            body.push('，');
            body.push_str(&fill(r.skewed(FOLLOW_UPS), r));
        }
        Report {
            kind: "FOLLOW_UP",
            title: format!("{name} 跟进"),
            body,
        }
    } else {
        let (title, body) = NOTICES[r.below(NOTICES.len())];
        Report {
            kind: "NOTICE",
            title: title.to_owned(),
            body: body.to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The queries.

/// Classes of queries, each a few queries people type.
const CLASSES: &[(&str, &[&str])] = &[
    (
        "1 word, common",
        &[
            "车辆", "检查", "司机", "门店", "保养", "深圳", "追尾", "交警",
        ],
    ),
    (
        "1 word, rare",
        &[
            "节温器",
            "球笼",
            "氧传感器",
            "摆臂",
            "垫片",
            "滞纳金",
            "充电桩",
            "气囊",
        ],
    ),
    (
        "1 word, colloquial (synonyms)",
        &[
            "蹭了",
            "轮胎破了",
            "冷气不冷",
            "后车撞",
            "没电了",
            "怪声",
            "年审",
            "罚单",
        ],
    ),
    (
        "2 words",
        &[
            "刹车 异响",
            "南山区 追尾",
            "空调 冷媒",
            "电动车 剐蹭",
            "保养 机油",
            "违章 押金",
            "深南大道 事故",
            "司机 退车",
        ],
    ),
    (
        "3 words",
        &[
            "宝安区 后车 追尾",
            "高速 右后轮 爆胎",
            "换 机油 机滤",
            "交警 定损 全责",
            "车辆 检查 异响",
            "租金 逾期 催缴",
            "台风 车辆 停放",
            "泥头车 刮花 车门",
        ],
    ),
];

struct ClassResult {
    class: &'static str,
    viewer: &'static str,
    /// Microseconds, sorted.
    micros: Vec<u32>,
    hits: usize,
}

async fn measure(db: &Db, company: &Company, args: &Args) -> anyhow::Result<Vec<ClassResult>> {
    let viewers = [
        ("operator", &company.admin),
        ("staff, one branch", &company.staff),
    ];
    // Connections and each statement's first planning, not measured.
    for (_, queries) in CLASSES {
        for q in *queries {
            for (_, v) in &viewers {
                search::find(db, v, &query(q)).await?;
            }
        }
    }
    let mut out = Vec::new();
    for (class, queries) in CLASSES {
        for (viewer_name, viewer) in &viewers {
            let mut micros = Vec::with_capacity(queries.len() * args.rounds);
            let mut hits = 0;
            let mut slowest = vec![0_u32; queries.len()];
            for _ in 0..args.rounds {
                for (k, q) in queries.iter().enumerate() {
                    let started = Instant::now();
                    let page = search::find(db, viewer, &query(q)).await?;
                    let took = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
                    micros.push(took);
                    slowest[k] = slowest[k].max(took);
                    hits += page.hits.len();
                }
            }
            if args.per_query {
                for (q, m) in queries.iter().zip(&slowest) {
                    eprintln!("  {viewer_name}\t{q}\tslowest {} ms", ms(Some(*m)));
                }
            }
            micros.sort_unstable();
            out.push(ClassResult {
                class,
                viewer: viewer_name,
                micros,
                hits,
            });
        }
    }
    let _ = company.tenant;
    Ok(out)
}

fn query(q: &str) -> SearchArgs<'_> {
    SearchArgs {
        query: q,
        kinds: None,
        first: Some(10),
        after: None,
    }
}

/// How common the query words are, and the table's size, for the report.
struct Facts {
    docs: i64,
    table_mb: i64,
    gin_mb: i64,
    frequency: Vec<(String, i64)>,
}

async fn facts(db: &Db) -> anyhow::Result<Facts> {
    let Db::Postgres(pool) = db else {
        bail!("not PostgreSQL");
    };
    let docs: i64 = sqlx::query_scalar("select count(*) from search_doc")
        .fetch_one(pool)
        .await?;
    let (table_mb, gin_mb): (i64, i64) = sqlx::query_as(
        "select pg_total_relation_size('search_doc') / 1048576,
                pg_relation_size('search_doc_tsv_idx') / 1048576",
    )
    .fetch_one(pool)
    .await?;
    let mut frequency = Vec::new();
    for (_, queries) in CLASSES.iter().take(2) {
        for q in *queries {
            let n: i64 = sqlx::query_scalar(
                "select count(*) from search_doc where tsv @@ to_tsquery('simple', $1)",
            )
            .bind(format!("'{q}'"))
            .fetch_one(pool)
            .await?;
            frequency.push(((*q).to_owned(), n));
        }
    }
    Ok(Facts {
        docs,
        table_mb,
        gin_mb,
        frequency,
    })
}

fn ms(micros: Option<u32>) -> String {
    micros.map_or_else(
        || "-".to_owned(),
        |m| format!("{:.1}", f64::from(m) / 1000.0),
    )
}

fn render(
    args: &Args,
    cores: usize,
    load: &Load,
    facts: &Facts,
    results: &[ClassResult],
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "search over {} reports ({} MB with its indexes, GIN {} MB), {} rounds, {} cores ({})",
        facts.docs,
        facts.table_mb,
        facts.gin_mb,
        args.rounds,
        cores,
        cpu::cpu_model().unwrap_or_else(|| "unknown CPU".to_owned())
    );
    match load {
        Load::Kept => {
            let _ = writeln!(s, "reports loaded by an earlier run");
        }
        Load::Loaded {
            generate_and_copy,
            index,
            vacuum,
        } => {
            let _ = writeln!(
                s,
                "loaded: generate, segment and copy {:.1} s, indexes {:.1} s, vacuum analyze {:.1} s",
                generate_and_copy.as_secs_f64(),
                index.as_secs_f64(),
                vacuum.as_secs_f64()
            );
        }
    }
    let _ = writeln!(s, "\nreports with the word:");
    for (word, n) in &facts.frequency {
        let share = count_f64(usize::try_from(*n).unwrap_or(0)) * 100.0
            / count_f64(usize::try_from(facts.docs.max(1)).unwrap_or(1));
        let _ = writeln!(s, "  {word}\t{n}\t{share:.2} %");
    }
    let _ = writeln!(
        s,
        "\n| class | viewer | searches | p50 ms | p99 ms | max ms | hits per search |"
    );
    let _ = writeln!(s, "|---|---|--:|--:|--:|--:|--:|");
    let mut all: Vec<u32> = Vec::new();
    for r in results {
        let n = r.micros.len();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {:.1} |",
            r.class,
            r.viewer,
            n,
            ms(percentile(&r.micros, 500)),
            ms(percentile(&r.micros, 990)),
            ms(r.micros.last().copied()),
            count_f64(r.hits) / count_f64(n.max(1))
        );
        all.extend(&r.micros);
    }
    all.sort_unstable();
    let _ = writeln!(
        s,
        "| **all** | both | {} | **{}** | **{}** | {} | |",
        all.len(),
        ms(percentile(&all, 500)),
        ms(percentile(&all, 990)),
        ms(all.last().copied())
    );
    s
}
