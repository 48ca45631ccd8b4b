//! The vector probe against a real PostgreSQL with pgvector (tests/common/postgres.rs):
//! generated data with an HNSW index, whose recall this test computes itself by brute
//! force; a filtered query that under-returns; faults (server down and back, a missing
//! table, a wrong dimension, a query past the timeout, a wrong password); and the HTTP
//! backend against a Qdrant-shaped target written here.

mod common;

use std::time::{Duration, Instant};

use common::postgres::{PASSWORD, Postgres};
use common::*;

const DIM: usize = 16;
const ROWS: usize = 3000;
const K: usize = 10;

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `ROWS` rows of `DIM`-dimensional vectors from a seeded server-side generator, 5 % of
/// them in org 1, with an HNSW index built small (m = 4, ef_construction = 32) so a low ef_search misses.
async fn load(pg: &Postgres) -> Vec<(i32, Vec<f32>)> {
    let c = pg.client().await;
    c.batch_execute(&format!(
        "CREATE EXTENSION IF NOT EXISTS vector;
         DROP TABLE IF EXISTS items;
         CREATE TABLE items (id int PRIMARY KEY, org_id int NOT NULL, embedding vector({DIM}) NOT NULL);
         SELECT setseed(0.42);
         INSERT INTO items SELECT i, CASE WHEN i % 20 = 0 THEN 1 ELSE 2 END,
           (SELECT array_agg(random() * 2 - 1) FROM generate_series(1, {DIM}) WHERE i > 0)::vector
           FROM generate_series(1, {ROWS}) i;
         CREATE INDEX ON items USING hnsw (embedding vector_l2_ops) WITH (m = 4, ef_construction = 32);
         ANALYZE items;"
    ))
    .await
    .unwrap();
    let rows = c.simple_query("SELECT id::text, embedding::text FROM items").await.unwrap();
    rows.iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some((
                r.get(0).unwrap().parse().unwrap(),
                sloprobe::probe::vector::parse_vector_text(r.get(1).unwrap()).unwrap(),
            )),
            _ => None,
        })
        .collect()
}

/// The exact top k by L2 distance, computed here.
fn brute_force(data: &[(i32, Vec<f32>)], q: &[f32], k: usize) -> Vec<(i32, f64)> {
    let mut d: Vec<(i32, f64)> = data
        .iter()
        .map(|(id, v)| {
            let s: f64 = v.iter().zip(q).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum();
            (*id, s.sqrt())
        })
        .collect();
    d.sort_by(|a, b| a.1.total_cmp(&b.1));
    d.truncate(k);
    d
}

/// What the index returns for `q` at `ef_search`, asked here directly.
async fn index_top_k(pg: &Postgres, q: &[f32], ef: u32) -> Vec<i32> {
    let c = pg.client().await;
    let v = sloprobe::probe::vector::vector_text(q);
    let sql = format!(
        "BEGIN; SET LOCAL hnsw.ef_search = {ef}; SELECT id FROM items ORDER BY embedding <-> '{v}' LIMIT {K}; COMMIT;"
    );
    c.simple_query(&sql)
        .await
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|s| s.parse().unwrap()),
            _ => None,
        })
        .collect()
}

fn queries(n: usize) -> Vec<Vec<f32>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            (0..DIM)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect()
        })
        .collect()
}

fn probe_toml(extra: &str) -> String {
    format!(
        "[[probe]]\nname = \"search\"\nkind = \"vector\"\ndsn = \"env:VECTOR_DSN\"\ntable = \"items\"\ncolumn = \"embedding\"\nk = {K}\nevery = \"30s\"\ntimeout = \"3s\"\n{extra}\n"
    )
}

fn set_dsn(dsn: &str) {
    // SAFETY: tests that touch VECTOR_DSN take TURN first.
    unsafe { std::env::set_var("VECTOR_DSN", dsn) };
}

#[tokio::test]
async fn recall_matches_a_brute_force_computation_and_rises_with_ef_search() {
    let _turn = TURN.lock().await;
    let pg = Postgres::start();
    let data = load(&pg).await;
    set_dsn(&pg.dsn());
    let qs = queries(12);
    let vectors = serde_json::to_string(&qs).unwrap();
    for ef in [10u32, 400] {
        let toml = probe_toml(&format!(
            "query_vectors = \"file:queries.json\"\nrecall_every = 1\nsettings = {{ \"hnsw.ef_search\" = \"{ef}\" }}"
        ));
        let dir = write_files(&[("sloprobe.toml", &toml), ("queries.json", &vectors)]);
        let cfg = sloprobe::config::Config::load(&dir.path().join("sloprobe.toml")).unwrap();
        let probes = sloprobe::probe::build_all(&cfg.probes, &sloprobe::probe::BuildContext::new()).unwrap();
        let mut sum = 0.0;
        for q in &qs {
            let o = probes[0].execute().await;
            assert!(o.success(), "{:?}", o.error);
            let exact: Vec<i32> = brute_force(&data, q, K).iter().map(|h| h.0).collect();
            let approx = index_top_k(&pg, q, ef).await;
            let ours = approx.iter().filter(|id| exact.contains(id)).count() as f64 / K as f64;
            assert_eq!(m(&o, "recall"), ours, "ef_search {ef}");
            assert_eq!(m(&o, "result_count"), K as f64);
            assert!(m(&o, "query") > 0.0 && m(&o, "exact_query") > 0.0);
            for phase in ["dns", "connect", "tls", "auth"] {
                assert!(o.get(phase).is_some(), "{phase}");
            }
            sum += ours;
        }
        let mean = sum / qs.len() as f64;
        eprintln!("ef_search {ef}: mean recall {mean:.3}");
        if ef == 10 {
            assert!(mean < 0.9, "ef_search 10 should miss: recall {mean}");
        } else {
            assert!(mean > 0.99, "ef_search 400 should find: recall {mean}");
        }
    }
}

