#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recall@10 of the search against a plain `LIKE '%query%'` over the body, on a labelled set:
//! 299 fleet reports written the way drivers and staff write (`testdata/corpus.tsv`) and 46
//! queries, each with the reports a person asking it wants, labelled by hand
//! (`testdata/queries.tsv`).
//!
//! Recall@10 of a query is the share of its relevant reports among the first ten hits, out of
//! at most ten (a query with fifteen relevant reports scores 1 when all ten hits are relevant).

use std::collections::{HashMap, HashSet};

use chrono::{Duration, TimeZone};
use minigate_store::{self as store, Db};

use super::{tests::world, *};

const CORPUS: &str = include_str!("testdata/corpus.tsv");
const QUERIES: &str = include_str!("testdata/queries.tsv");
const K: usize = 10;

/// What the search must reach on this set, and how far above `LIKE`.
const MIN_RECALL: f64 = 0.85;

fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .skip(1) // the header
        .map(|l| l.split('\t').collect())
}

async fn like_top(db: &Db, tenant: Id, query: &str) -> Vec<Id> {
    let mut c = db.conn().await.unwrap();
    let rows: Vec<(Id,)> = store::fetch_all!(
        &mut c,
        (Id,),
        "select id from search_doc where tenant_id = $1 and body like $2
         order by created_at desc limit 10",
        tenant,
        format!("%{query}%")
    )
    .unwrap();
    rows.into_iter().map(|(id,)| id).collect()
}

async fn recall_at_10_beats_like(db: Db) {
    let w = world(db.clone()).await;
    let start = chrono::Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let mut ids: HashMap<&str, Id> = HashMap::new();
    let mut tx = db.begin().await.unwrap();
    for (n, f) in rows(CORPUS).enumerate() {
        let [name, kind, _topics, title, body] = f[..] else {
            panic!("corpus line {f:?}");
        };
        let id = Id::new();
        ids.insert(name, id);
        let kind = SearchKind::parse(kind).unwrap();
        index(
            &mut tx,
            &Doc {
                id,
                tenant_id: w.tenant,
                kind,
                branch_id: (kind != SearchKind::Notice).then_some(w.b1),
                owner_id: Some(if kind == SearchKind::FollowUp {
                    w.staff1.user_id
                } else {
                    w.driver1.user_id
                }),
                title,
                body,
                created_at: start + Duration::hours(i64::try_from(n).unwrap()),
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    assert!(ids.len() > 290, "{} reports", ids.len());

    let (mut ours_sum, mut like_sum, mut n) = (0.0, 0.0, 0.0);
    let mut report = String::from("query\tours\tLIKE\trelevant\n");
    for f in rows(QUERIES) {
        let [query, relevant] = f[..] else {
            panic!("query line {f:?}");
        };
        let relevant: HashSet<Id> = relevant.split(',').map(|r| ids[r]).collect();
        let ours: Vec<Id> = find(
            &db,
            &w.admin,
            &SearchArgs {
                query,
                kinds: None,
                first: Some(10),
                after: None,
            },
        )
        .await
        .unwrap()
        .hits
        .iter()
        .map(|h| h.id.parse().unwrap())
        .collect();
        let like = like_top(&db, w.tenant, query).await;
        let recall = |top: &[Id]| {
            let found = top
                .iter()
                .take(K)
                .filter(|id| relevant.contains(id))
                .count();
            f64::from(u32::try_from(found).unwrap())
                / f64::from(u32::try_from(relevant.len().min(K)).unwrap())
        };
        let (o, l) = (recall(&ours), recall(&like));
        report.push_str(&format!("{query}\t{o:.2}\t{l:.2}\t{}\n", relevant.len()));
        ours_sum += o;
        like_sum += l;
        n += 1.0;
    }
    let (ours, like) = (ours_sum / n, like_sum / n);
    let backend = db.backend().name();
    eprintln!("{report}recall@10 on {backend} over {n} queries: ours {ours:.3}, LIKE {like:.3}");
    assert!(
        ours >= MIN_RECALL && ours > like + 0.2,
        "recall@10 on {backend}: ours {ours:.3}, LIKE {like:.3}\n{report}"
    );
}
store::on_both_backends!(recall_at_10_beats_like, recall_at_10_beats_like);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn debug_queries() {
    let t = store::testing::TestDb::sqlite().await.unwrap();
    let db = t.db.clone();
    let w = world(db.clone()).await;
    let start = chrono::Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let mut names: HashMap<Id, (String, String, String)> = HashMap::new();
    let mut ids: HashMap<&str, Id> = HashMap::new();
    let mut tx = db.begin().await.unwrap();
    for (n, f) in rows(CORPUS).enumerate() {
        let id = Id::new();
        ids.insert(f[0], id);
        names.insert(id, (f[0].to_owned(), f[2].to_owned(), f[4].to_owned()));
        index(
            &mut tx,
            &Doc {
                id,
                tenant_id: w.tenant,
                kind: SearchKind::parse(f[1]).unwrap(),
                branch_id: Some(w.b1),
                owner_id: None,
                title: f[3],
                body: f[4],
                created_at: start + Duration::hours(i64::try_from(n).unwrap()),
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let want: Vec<String> = std::env::var("Q")
        .unwrap_or_default()
        .split('/')
        .map(str::to_owned)
        .collect();
    let th = synonyms::Thesaurus::new(synonyms::BUILT_IN.iter().map(Vec::as_slice));
    for f in rows(QUERIES) {
        if !want.iter().any(|q| q == f[0]) {
            continue;
        }
        let relevant: HashSet<Id> = f[1].split(',').map(|r| ids[r]).collect();
        eprintln!(
            "=== {} plan {}",
            f[0],
            plan::Plan::new(f[0], &th)
                .render(minigate_store::Backend::Sqlite)
                .all
        );
        let r = find(
            &db,
            &w.admin,
            &SearchArgs {
                query: f[0],
                kinds: None,
                first: Some(10),
                after: None,
            },
        )
        .await
        .unwrap();
        let mut got = HashSet::new();
        for h in &r.hits {
            let id: Id = h.id.parse().unwrap();
            got.insert(id);
            let n = &names[&id];
            eprintln!(
                "  {} {} {:.3} {} {}",
                if relevant.contains(&id) { "+" } else { "-" },
                n.0,
                h.rank,
                n.1,
                h.highlighted_snippet
            );
        }
        for id in relevant.difference(&got) {
            let n = &names[id];
            eprintln!(
                "  MISSED {} {} {} | {:?}",
                n.0,
                n.1,
                n.2,
                tokens::search_tokens(&n.2)
                    .into_iter()
                    .map(|t| t.word)
                    .collect::<Vec<_>>()
            );
        }
    }
}
