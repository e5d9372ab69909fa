//! The governance store, the same suite on SQLite (a temp file) and on
//! PostgreSQL (`SWITCHYARD_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; each test in its own schema,
//! dropped afterwards). Without a reachable PostgreSQL the `postgres::` tests
//! print SKIPPED and pass — except under `CI=true`, where they fail.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;
use switchyard_server::store::*;
use tokio::sync::mpsc;

// ---------------------------------------------------------------- harness

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

struct TestDb {
    store: Store,
    /// The URL the store was opened with (reconnects use it too).
    url: String,
    dir: PathBuf,
    pg: Option<PgSchema>,
}

struct PgSchema {
    base: String,
    schema: String,
}

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "switchyard-store-{}-{}",
        std::process::id(),
        new_id("").to_lowercase()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = temp_dir();
        let url = format!("sqlite://{}/db/switchyard.db", dir.display());
        let store = Store::connect(&url).await.unwrap();
        TestDb {
            store,
            url,
            dir,
            pg: None,
        }
    }

    async fn postgres() -> Option<TestDb> {
        let base =
            std::env::var("SWITCHYARD_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.into());
        let admin = match tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&base),
        )
        .await
        {
            Ok(Ok(p)) => p,
            failure => {
                let why = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("PostgreSQL not reachable at {base} ({why}) and CI=true");
                }
                eprintln!(
                    "SKIPPED: PostgreSQL not reachable at {base} ({why}) (set SWITCHYARD_TEST_DATABASE_URL)"
                );
                return None;
            }
        };
        let schema = format!("sy_test_{}", new_id("").to_lowercase());
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let url = with_search_path(&base, &schema);
        let store = Store::connect(&url).await.unwrap();
        Some(TestDb {
            store,
            url,
            dir: temp_dir(),
            pg: Some(PgSchema { base, schema }),
        })
    }

    /// A second, independent connection pool to the same database (for
    /// simulating outages behind the store's back).
    async fn side_pool(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.url)
            .await
            .unwrap()
    }
}

fn with_search_path(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(pg) = self.pg.take() {
            // Drop the schema from a thread with its own runtime (Drop is sync).
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(p) = sqlx::postgres::PgPoolOptions::new()
                        .max_connections(1)
                        .connect(&pg.base)
                        .await
                    {
                        let _ = sqlx::query("SET lock_timeout = '10s'").execute(&p).await;
                        let _ =
                            sqlx::query(&format!("DROP SCHEMA IF EXISTS {} CASCADE", pg.schema))
                                .execute(&p)
                                .await;
                        p.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// Each listed `async fn name(db: &TestDb)` becomes `sqlite::name` and
/// `postgres::name`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.store.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                    db.store.close().await;
                }
            )*
        }
    };
}

on_both!(
    placeholders_bind_by_number,
    migrations_are_idempotent,
    tenants_crud,
    users_crud,
    keys_crud_and_lookup_by_hash,
    touch_keys_sets_last_used_only,
    budgets_and_rate_limits,
    changes_feed_exactly_once,
    changes_feed_many_changes_in_one_millisecond,
    usage_insert_is_idempotent_and_takes_10k_rows,
    usage_reports_match_computed_values,
    spend_since_counts_scope_from_time,
    scope_lookups_use_the_partial_indexes,
    alerts_fire_once,
    audit_insert_and_list,
    audit_log_writes_file_and_db,
    writer_writes_every_row,
    writer_spools_during_outage_and_replays_once,
    writer_spools_when_closed_and_next_run_replays,
    errors_name_the_operation,
);

// ---------------------------------------------------------------- fixtures

fn tenant(id: &str, name: &str) -> Tenant {
    Tenant {
        id: id.into(),
        name: name.into(),
        status: TenantStatus::Active,
        plan: Some("basic".into()),
        allowed_models: vec!["gpt".into(), "claude".into()],
        metadata: json!({"team": "a", "n": 1}),
        created_at: 1_000,
        updated_at: 0,
    }
}

fn user(id: &str, tenant_id: &str, email: &str) -> User {
    User {
        id: id.into(),
        tenant_id: tenant_id.into(),
        email: email.into(),
        name: Some("Ada".into()),
        role: Role::Developer,
        disabled: false,
        created_at: 2_000,
        updated_at: 0,
    }
}

fn key(id: &str, tenant_id: &str, user_id: Option<&str>, hash: &str) -> ApiKey {
    ApiKey {
        id: id.into(),
        hash: hash.into(),
        prefix: "sk-sy-abc".into(),
        name: Some("ci".into()),
        tenant_id: tenant_id.into(),
        user_id: user_id.map(Into::into),
        role: Role::Developer,
        allowed_models: vec![],
        metadata: json!({}),
        expires_at: Some(9_999_999_999_999),
        enabled: true,
        revoked_at: None,
        rotated_to: None,
        created_at: 3_000,
        updated_at: 0,
        last_used_at: None,
        parent_key_id: None,
        disabled_by: None,
    }
}

fn budget(id: &str, scope: Scope, scope_id: &str) -> Budget {
    Budget {
        id: id.into(),
        scope,
        scope_id: scope_id.into(),
        period: "monthly".into(),
        max_cost: Some(12.5),
        max_tokens: Some(1_000_000),
        alert_thresholds: vec![0.5, 0.8, 0.95],
        action: BudgetAction::Downgrade,
        downgrade_alias: Some("cheap".into()),
        created_at: 4_000,
        updated_at: 0,
        owner: Default::default(),
    }
}

fn rate(id: &str, scope: Scope, scope_id: &str) -> RateLimit {
    RateLimit {
        id: id.into(),
        scope,
        scope_id: scope_id.into(),
        model: Some("gpt".into()),
        rpm: Some(60),
        tpm: None,
        created_at: 5_000,
        updated_at: 0,
        owner: Default::default(),
    }
}

/// Deterministic pseudo-random numbers (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// True one time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.next() % n < 1
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

fn usage_row(id: &str, ts: Millis) -> UsageRow {
    UsageRow {
        request_id: id.into(),
        ts,
        tenant_id: Some("ten_a".into()),
        user_id: Some("usr_a".into()),
        key_id: Some("key_a".into()),
        alias: "gpt".into(),
        provider: "openai".into(),
        deployment: "openai-1".into(),
        upstream_model: "gpt-4o-mini".into(),
        ingress: "openai".into(),
        input_tokens: 10,
        output_tokens: 20,
        cached_input_tokens: 2,
        cost: 0.001,
        estimated: false,
        latency_ms: 12.5,
        ttft_ms: Some(3.25),
        status: 200,
        error_class: None,
        cache_hit: false,
        attempts: 1,
        stream: true,
        unpriced: false,
    }
}

/// `n` varied rows over three days from `t0`.
fn varied_rows(n: usize, seed: u64, t0: Millis) -> Vec<UsageRow> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let ts = t0 + (rng.next() % (3 * 86_400_000)) as i64;
            let tenant = rng.pick(&["ten_a", "ten_b", "ten_c", ""]);
            let status = *[200, 200, 200, 429, 500]
                .get((rng.next() % 5) as usize)
                .unwrap();
            UsageRow {
                request_id: format!("req_{seed}_{i}"),
                ts,
                tenant_id: (!tenant.is_empty()).then(|| tenant.to_string()),
                user_id: Some(rng.pick(&["usr_1", "usr_2", "usr_3"]).into()),
                key_id: match rng.next() % 4 {
                    0 => None,
                    k => Some(format!("key_{k}")),
                },
                alias: rng.pick(&["gpt", "claude", "gem"]).into(),
                provider: rng.pick(&["openai", "anthropic", "gemini"]).into(),
                deployment: "d".into(),
                upstream_model: "m".into(),
                ingress: rng.pick(&["openai", "anthropic"]).into(),
                input_tokens: (rng.next() % 5000) as i64,
                output_tokens: (rng.next() % 2000) as i64,
                cached_input_tokens: (rng.next() % 100) as i64,
                cost: (rng.next() % 100_000) as f64 / 1e6,
                estimated: rng.one_in(7),
                latency_ms: (rng.next() % 10_000) as f64 / 10.0,
                ttft_ms: rng.one_in(2).then_some(1.5),
                status,
                error_class: match (status, rng.next() % 10) {
                    (200, 0) => Some("stream_aborted".into()),
                    (200, _) => None,
                    _ => Some("upstream".into()),
                },
                cache_hit: rng.one_in(5),
                attempts: 1 + (rng.next() % 3) as i32,
                stream: rng.one_in(2),
                unpriced: i % 9 == 0,
            }
        })
        .collect()
}

async fn count_usage(db: &TestDb) -> i64 {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM usage_log")
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    sqlx::Row::try_get(&row, "n").unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

// ---------------------------------------------------------------- tests

/// `$N` binds argument N on both databases: in order, reused, and even
/// out of order (sqlx's SQLite driver maps `$N` by its number; SQLite
/// itself would number named parameters by first appearance).
async fn placeholders_bind_by_number(db: &TestDb) {
    let pool = db.store.pool();
    let r = sqlx::query("SELECT $1 AS a, $2 AS b")
        .bind(7_i64)
        .bind("x")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(sqlx::Row::try_get::<i64, _>(&r, "a").unwrap(), 7);
    assert_eq!(sqlx::Row::try_get::<String, _>(&r, "b").unwrap(), "x");

    let r = sqlx::query("SELECT $1 + $1 AS s, $2 AS t")
        .bind(20_i64)
        .bind("y")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(sqlx::Row::try_get::<i64, _>(&r, "s").unwrap(), 40);
    assert_eq!(sqlx::Row::try_get::<String, _>(&r, "t").unwrap(), "y");

    let r = sqlx::query("SELECT $2 AS b, $1 AS a")
        .bind(1_i64)
        .bind(2_i64)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(sqlx::Row::try_get::<i64, _>(&r, "a").unwrap(), 1);
    assert_eq!(sqlx::Row::try_get::<i64, _>(&r, "b").unwrap(), 2);

    if db.store.kind() == DbKind::Sqlite {
        // Why flags are SMALLINT: Any cannot read a column declared BOOLEAN
        // from SQLite.
        let mut c = pool.acquire().await.unwrap();
        sqlx::query("CREATE TEMP TABLE bools (b BOOLEAN)")
            .execute(&mut *c)
            .await
            .unwrap();
        sqlx::query("INSERT INTO bools (b) VALUES ($1)")
            .bind(true)
            .execute(&mut *c)
            .await
            .unwrap();
        let read = sqlx::query("SELECT b FROM bools").fetch_one(&mut *c).await;
        assert!(read.is_err(), "sqlx Any now reads SQLite BOOLEAN columns");
    }
}

async fn migrations_are_idempotent(db: &TestDb) {
    let again = Store::connect(&db.url).await.unwrap();
    again.ping().await.unwrap();
    let third = Store::connect(&db.url).await.unwrap();
    third.ping().await.unwrap();
    let r = sqlx::query("SELECT COUNT(*) AS n FROM _sqlx_migrations")
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count() as i64;
    assert_eq!(sqlx::Row::try_get::<i64, _>(&r, "n").unwrap(), files);
    assert_eq!(
        again.kind(),
        if db.pg.is_some() {
            DbKind::Postgres
        } else {
            DbKind::Sqlite
        }
    );
    again.close().await;
    third.close().await;
    if db.store.kind() == DbKind::Sqlite {
        let r = sqlx::query("PRAGMA journal_mode")
            .fetch_one(db.store.pool())
            .await
            .unwrap();
        let mode: String = sqlx::Row::try_get(&r, 0).unwrap();
        assert_eq!(mode.to_lowercase(), "wal");
        assert!(
            db.dir.join("db/switchyard.db").exists(),
            "parent dirs created"
        );
    }
}

async fn tenants_crud(db: &TestDb) {
    let s = &db.store;
    assert!(s.get_tenant("ten_1").await.unwrap().is_none());
    let t = tenant("ten_1", "Acme");
    s.create_tenant(&t).await.unwrap();
    let got = s.get_tenant("ten_1").await.unwrap().unwrap();
    assert_eq!(got.name, "Acme");
    assert_eq!(got.metadata, t.metadata);
    assert_eq!(got.allowed_models, t.allowed_models);
    assert_eq!(got.created_at, 1_000);
    assert!(got.updated_at > 0, "the store assigns updated_at");

    // Duplicate id, duplicate name.
    let e = s
        .create_tenant(&tenant("ten_1", "Other"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    let e = s.create_tenant(&tenant("ten_2", "Acme")).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");

    s.create_tenant(&tenant("ten_2", "Beta")).await.unwrap();
    let mut upd = got.clone();
    upd.status = TenantStatus::Suspended;
    upd.plan = None;
    upd.allowed_models = vec![];
    upd.metadata = json!({"x": [1, 2]});
    s.update_tenant(&upd).await.unwrap();
    let again = s.get_tenant("ten_1").await.unwrap().unwrap();
    assert_eq!(again.status, TenantStatus::Suspended);
    assert_eq!(again.plan, None);
    assert_eq!(again.metadata, json!({"x": [1, 2]}));
    assert!(again.updated_at > got.updated_at);
    assert_eq!(again.created_at, got.created_at);

    // Renaming onto another tenant's name conflicts; absent → NotFound.
    upd.name = "Beta".into();
    let e = s.update_tenant(&upd).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    let e = s
        .update_tenant(&tenant("ten_404", "Nope"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");

    let all = s.list_tenants().await.unwrap();
    assert_eq!(
        all.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["ten_1", "ten_2"]
    );
}

async fn users_crud(db: &TestDb) {
    let s = &db.store;
    s.create_tenant(&tenant("ten_1", "A")).await.unwrap();
    s.create_tenant(&tenant("ten_2", "B")).await.unwrap();
    let u = user("usr_1", "ten_1", "ada@example.com");
    s.create_user(&u).await.unwrap();
    let got = s.get_user("usr_1").await.unwrap().unwrap();
    assert_eq!(got.email, u.email);
    assert_eq!(got.role, Role::Developer);
    assert!(!got.disabled);

    let e = s
        .create_user(&user("usr_1", "ten_1", "x@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    let e = s
        .create_user(&user("usr_2", "ten_1", "ada@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::Conflict(_)),
        "email unique per tenant: {e}"
    );
    // The same email in another tenant is fine.
    s.create_user(&user("usr_3", "ten_2", "ada@example.com"))
        .await
        .unwrap();
    // Unknown tenant.
    let e = s
        .create_user(&user("usr_4", "ten_x", "z@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");

    let mut upd = got.clone();
    upd.role = Role::Billing;
    upd.disabled = true;
    upd.name = None;
    s.update_user(&upd).await.unwrap();
    let again = s.get_user("usr_1").await.unwrap().unwrap();
    assert_eq!(again.role, Role::Billing);
    assert!(again.disabled);
    assert_eq!(again.name, None);
    let e = s
        .update_user(&user("usr_404", "ten_1", "q@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");

    assert_eq!(s.list_users(None).await.unwrap().len(), 2);
    let t1 = s.list_users(Some("ten_1")).await.unwrap();
    assert_eq!(t1.len(), 1);
    assert_eq!(t1[0].id, "usr_1");
    assert!(s.list_users(Some("ten_404")).await.unwrap().is_empty());
    assert!(s.get_user("usr_404").await.unwrap().is_none());
}

async fn keys_crud_and_lookup_by_hash(db: &TestDb) {
    let s = &db.store;
    s.create_tenant(&tenant("ten_1", "A")).await.unwrap();
    s.create_tenant(&tenant("ten_2", "B")).await.unwrap();
    s.create_user(&user("usr_1", "ten_1", "a@x")).await.unwrap();
    let k = key("key_1", "ten_1", Some("usr_1"), "hash1");
    s.create_key(&k).await.unwrap();
    s.create_key(&key("key_2", "ten_1", None, "hash2"))
        .await
        .unwrap();
    s.create_key(&key("key_3", "ten_2", None, "hash3"))
        .await
        .unwrap();

    let got = s.get_key_by_hash("hash1").await.unwrap().unwrap();
    assert_eq!(got.id, "key_1");
    assert_eq!(got.user_id.as_deref(), Some("usr_1"));
    assert_eq!(got.expires_at, k.expires_at);
    assert!(got.enabled);
    assert!(s.get_key_by_hash("nope").await.unwrap().is_none());
    assert_eq!(s.get_key("key_2").await.unwrap().unwrap().hash, "hash2");
    assert!(s.get_key("key_404").await.unwrap().is_none());

    let e = s
        .create_key(&key("key_4", "ten_1", None, "hash1"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "duplicate hash: {e}");
    let e = s
        .create_key(&key("key_1", "ten_1", None, "hashX"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "duplicate id: {e}");
    let e = s
        .create_key(&key("key_5", "ten_1", Some("usr_x"), "hash5"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "unknown user: {e}");

    let mut upd = got.clone();
    upd.enabled = false;
    upd.revoked_at = Some(77);
    upd.rotated_to = Some("key_2".into());
    upd.allowed_models = vec!["gpt".into()];
    upd.metadata = json!({"env": "prod"});
    s.update_key(&upd).await.unwrap();
    let again = s.get_key("key_1").await.unwrap().unwrap();
    assert!(!again.enabled);
    assert_eq!(again.revoked_at, Some(77));
    assert_eq!(again.rotated_to.as_deref(), Some("key_2"));
    assert_eq!(again.allowed_models, vec!["gpt".to_string()]);
    assert_eq!(again.metadata, json!({"env": "prod"}));
    assert!(again.updated_at > got.updated_at);
    let e = s
        .update_key(&key("key_404", "ten_1", None, "h404"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");

    let ids = |v: Vec<ApiKey>| v.into_iter().map(|k| k.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s.list_keys(None, None).await.unwrap()),
        ["key_1", "key_2", "key_3"]
    );
    assert_eq!(
        ids(s.list_keys(Some("ten_1"), None).await.unwrap()),
        ["key_1", "key_2"]
    );
    assert_eq!(
        ids(s.list_keys(Some("ten_1"), Some("usr_1")).await.unwrap()),
        ["key_1"]
    );
    assert_eq!(
        ids(s.list_keys(None, Some("usr_1")).await.unwrap()),
        ["key_1"]
    );
    assert!(s
        .list_keys(Some("ten_2"), Some("usr_1"))
        .await
        .unwrap()
        .is_empty());
}

async fn touch_keys_sets_last_used_only(db: &TestDb) {
    let s = &db.store;
    s.create_tenant(&tenant("ten_1", "A")).await.unwrap();
    for i in 0..300 {
        s.create_key(&key(
            &format!("key_{i:03}"),
            "ten_1",
            None,
            &format!("h{i}"),
        ))
        .await
        .unwrap();
    }
    let before = s.changes_since(0).await.unwrap();
    let k0 = s.get_key("key_000").await.unwrap().unwrap();
    // 300 keys (more than one statement's chunk), duplicates, an unknown id.
    let mut used: Vec<(String, Millis)> = (0..300)
        .map(|i| (format!("key_{i:03}"), 1_000 + i))
        .collect();
    used.push(("key_000".into(), 5_000));
    used.push(("key_000".into(), 4_000));
    used.push(("key_unknown".into(), 9));
    s.touch_keys(&used).await.unwrap();
    s.touch_keys(&[]).await.unwrap();
    let k = s.get_key("key_000").await.unwrap().unwrap();
    assert_eq!(k.last_used_at, Some(5_000));
    assert_eq!(
        k.updated_at, k0.updated_at,
        "touch must not bump updated_at"
    );
    assert_eq!(
        s.get_key("key_299").await.unwrap().unwrap().last_used_at,
        Some(1_299)
    );
    // Older timestamps never move it back.
    s.touch_keys(&[("key_000".into(), 10)]).await.unwrap();
    assert_eq!(
        s.get_key("key_000").await.unwrap().unwrap().last_used_at,
        Some(5_000)
    );
    // And the change feed does not see key use.
    let after = s.changes_since(before.watermark).await.unwrap();
    assert!(after.is_empty(), "{after:?}");
    assert_eq!(after.watermark, before.watermark);
}

async fn budgets_and_rate_limits(db: &TestDb) {
    let s = &db.store;
    let b = budget("bud_1", Scope::Tenant, "ten_1");
    s.upsert_budget(&b).await.unwrap();
    s.upsert_budget(&budget("bud_2", Scope::Key, "key_1"))
        .await
        .unwrap();
    let got = s
        .list_budgets(Some((Scope::Tenant, "ten_1")))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].alert_thresholds, vec![0.5, 0.8, 0.95]);
    assert_eq!(got[0].action, BudgetAction::Downgrade);
    assert_eq!(got[0].max_cost, Some(12.5));
    let first_update = got[0].updated_at;

    // Upsert replaces (keeping created_at).
    let mut b2 = b.clone();
    b2.max_cost = None;
    b2.action = BudgetAction::Block;
    b2.downgrade_alias = None;
    b2.created_at = 99_999;
    s.upsert_budget(&b2).await.unwrap();
    let got = s
        .list_budgets(Some((Scope::Tenant, "ten_1")))
        .await
        .unwrap();
    assert_eq!(got[0].max_cost, None);
    assert_eq!(got[0].action, BudgetAction::Block);
    assert_eq!(got[0].created_at, 4_000);
    assert!(got[0].updated_at > first_update);
    assert_eq!(s.list_budgets(None).await.unwrap().len(), 2);
    assert!(s
        .list_budgets(Some((Scope::User, "ten_1")))
        .await
        .unwrap()
        .is_empty());

    assert!(s.delete_budget("bud_1").await.unwrap());
    assert!(!s.delete_budget("bud_1").await.unwrap());
    assert!(!s.delete_budget("bud_404").await.unwrap());
    assert_eq!(s.list_budgets(None).await.unwrap().len(), 1);

    let r = rate("rl_1", Scope::User, "usr_1");
    s.upsert_rate_limit(&r).await.unwrap();
    s.upsert_rate_limit(&rate("rl_2", Scope::Tenant, "ten_1"))
        .await
        .unwrap();
    let mut r2 = r.clone();
    r2.rpm = None;
    r2.tpm = Some(10_000);
    r2.model = None;
    s.upsert_rate_limit(&r2).await.unwrap();
    let got = s
        .list_rate_limits(Some((Scope::User, "usr_1")))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].rpm, got[0].tpm, got[0].model.clone()),
        (None, Some(10_000), None)
    );
    assert_eq!(s.list_rate_limits(None).await.unwrap().len(), 2);
    assert!(s.delete_rate_limit("rl_1").await.unwrap());
    assert!(!s.delete_rate_limit("rl_1").await.unwrap());
    assert_eq!(s.list_rate_limits(None).await.unwrap().len(), 1);
}

async fn changes_feed_exactly_once(db: &TestDb) {
    let s = &db.store;
    let c0 = s.changes_since(0).await.unwrap();
    assert!(c0.is_empty());
    let w0 = c0.watermark;

    s.create_tenant(&tenant("ten_1", "A")).await.unwrap();
    s.create_user(&user("usr_1", "ten_1", "a@x")).await.unwrap();
    s.create_key(&key("key_1", "ten_1", Some("usr_1"), "h1"))
        .await
        .unwrap();
    s.upsert_budget(&budget("bud_1", Scope::Tenant, "ten_1"))
        .await
        .unwrap();
    s.upsert_rate_limit(&rate("rl_1", Scope::Key, "key_1"))
        .await
        .unwrap();

    let c1 = s.changes_since(w0).await.unwrap();
    assert_eq!(c1.tenants.len(), 1);
    assert_eq!(c1.users.len(), 1);
    assert_eq!(c1.keys.len(), 1);
    assert_eq!(c1.budgets.len(), 1);
    assert_eq!(c1.rate_limits.len(), 1);
    assert!(c1.deleted_budgets.is_empty() && c1.deleted_rate_limits.is_empty());
    assert!(c1.watermark > w0);
    // Nothing new → nothing, same watermark.
    let c1b = s.changes_since(c1.watermark).await.unwrap();
    assert!(c1b.is_empty());
    assert_eq!(c1b.watermark, c1.watermark);

    // Updates and deletes.
    let mut k = s.get_key("key_1").await.unwrap().unwrap();
    k.enabled = false;
    s.update_key(&k).await.unwrap();
    let mut t = s.get_tenant("ten_1").await.unwrap().unwrap();
    t.status = TenantStatus::Suspended;
    s.update_tenant(&t).await.unwrap();
    assert!(s.delete_budget("bud_1").await.unwrap());
    assert!(s.delete_rate_limit("rl_1").await.unwrap());
    let c2 = s.changes_since(c1.watermark).await.unwrap();
    assert_eq!(c2.keys.len(), 1);
    assert!(!c2.keys[0].enabled);
    assert_eq!(c2.tenants.len(), 1);
    assert_eq!(c2.tenants[0].status, TenantStatus::Suspended);
    assert!(c2.users.is_empty());
    assert!(c2.budgets.is_empty() && c2.rate_limits.is_empty());
    assert_eq!(c2.deleted_budgets, ["bud_1"]);
    assert_eq!(c2.deleted_rate_limits, ["rl_1"]);
    assert!(s.changes_since(c2.watermark).await.unwrap().is_empty());

    // Re-creating a deleted budget clears its tombstone.
    s.upsert_budget(&budget("bud_1", Scope::Tenant, "ten_1"))
        .await
        .unwrap();
    let c3 = s.changes_since(c2.watermark).await.unwrap();
    assert_eq!(c3.budgets.len(), 1);
    assert!(c3.deleted_budgets.is_empty());
    // A full reload sees the current state: the budget, no tombstone.
    let all = s.changes_since(0).await.unwrap();
    assert_eq!(all.budgets.len(), 1);
    assert!(all.deleted_budgets.is_empty());
    assert_eq!(all.deleted_rate_limits, ["rl_1"]);
    assert_eq!(all.watermark, c3.watermark);
}

/// Hundreds of writes racing (far more than one per millisecond) while a
/// poller follows the feed: every change is delivered exactly once and the
/// poller ends with the final state.
async fn changes_feed_many_changes_in_one_millisecond(db: &TestDb) {
    let s = db.store.clone();
    s.create_tenant(&tenant("ten_1", "A")).await.unwrap();
    let start = s.changes_since(0).await.unwrap().watermark;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let s = s.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut since = start;
            let mut seen: Vec<(String, Millis)> = Vec::new();
            let mut deleted: Vec<String> = Vec::new();
            loop {
                let done = stop.load(std::sync::atomic::Ordering::SeqCst);
                let c = s.changes_since(since).await.unwrap();
                assert!(c.watermark >= since);
                for b in &c.budgets {
                    assert!(b.updated_at > since && b.updated_at <= c.watermark);
                }
                seen.extend(c.budgets.iter().map(|b| (b.id.clone(), b.updated_at)));
                seen.extend(c.rate_limits.iter().map(|r| (r.id.clone(), r.updated_at)));
                seen.extend(c.users.iter().map(|u| (u.id.clone(), u.updated_at)));
                deleted.extend(c.deleted_budgets.iter().cloned());
                since = c.watermark;
                if done {
                    return (seen, deleted, since);
                }
                tokio::task::yield_now().await;
            }
        })
    };

    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let id = format!("bud_{w}_{i}");
                s.upsert_budget(&budget(&id, Scope::Tenant, "ten_1"))
                    .await
                    .unwrap();
                if i % 3 == 0 {
                    let mut b = budget(&id, Scope::Tenant, "ten_1");
                    b.max_tokens = Some(7);
                    s.upsert_budget(&b).await.unwrap();
                }
                if i % 10 == 9 {
                    s.upsert_rate_limit(&rate(&format!("rl_{w}_{i}"), Scope::Tenant, "ten_1"))
                        .await
                        .unwrap();
                    s.create_user(&user(
                        &format!("usr_{w}_{i}"),
                        "ten_1",
                        &format!("{w}{i}@x"),
                    ))
                    .await
                    .unwrap();
                }
                if i % 20 == 19 {
                    assert!(s.delete_budget(&id).await.unwrap());
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (seen, deleted, last) = poller.await.unwrap();

    // No (row, version) delivered twice.
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "a change was delivered twice");
    // The poller's final view equals the stored state.
    let final_budgets: BTreeMap<String, Millis> = s
        .list_budgets(None)
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.id, b.updated_at))
        .collect();
    assert_eq!(final_budgets.len(), 8 * 38);
    let mut latest: HashMap<String, Millis> = HashMap::new();
    for (id, v) in &seen {
        let e = latest.entry(id.clone()).or_insert(*v);
        *e = (*e).max(*v);
    }
    for (id, v) in &final_budgets {
        assert_eq!(
            latest.get(id),
            Some(v),
            "budget {id}: final version not delivered"
        );
    }
    assert_eq!(deleted.len(), 16);
    for d in &deleted {
        assert!(!final_budgets.contains_key(d));
    }
    assert_eq!(
        seen.iter().filter(|(id, _)| id.starts_with("rl_")).count(),
        32
    );
    assert_eq!(
        seen.iter().filter(|(id, _)| id.starts_with("usr_")).count(),
        32
    );
    // Every clock value is distinct across all rows.
    let all = s.changes_since(0).await.unwrap();
    let mut stamps: Vec<Millis> = all
        .budgets
        .iter()
        .map(|b| b.updated_at)
        .chain(all.users.iter().map(|u| u.updated_at))
        .chain(all.rate_limits.iter().map(|r| r.updated_at))
        .chain(all.tenants.iter().map(|t| t.updated_at))
        .collect();
    let n = stamps.len();
    stamps.sort_unstable();
    stamps.dedup();
    assert_eq!(stamps.len(), n, "updated_at values collide");
    assert!(s.changes_since(last).await.unwrap().is_empty());
}

async fn usage_insert_is_idempotent_and_takes_10k_rows(db: &TestDb) {
    let s = &db.store;
    let r = usage_row("req_1", 1_700_000_000_000);
    s.insert_usage(std::slice::from_ref(&r)).await.unwrap();
    s.insert_usage(std::slice::from_ref(&r)).await.unwrap();
    let mut changed = r.clone();
    changed.cost = 99.0;
    s.insert_usage(&[changed, r.clone()]).await.unwrap();
    let rows = s.usage_rows(&UsageFilter::default(), 10).await.unwrap();
    assert_eq!(
        rows,
        vec![r.clone()],
        "first write wins, round trip is exact"
    );
    s.insert_usage(&[]).await.unwrap();

    let big = varied_rows(10_000, 42, 1_700_000_000_000);
    let t = std::time::Instant::now();
    s.insert_usage(&big).await.unwrap();
    eprintln!("{:?}: 10k usage rows in {:?}", s.kind(), t.elapsed());
    assert_eq!(count_usage(db).await, 10_001);
    // Again: nothing new.
    s.insert_usage(&big).await.unwrap();
    assert_eq!(count_usage(db).await, 10_001);
    // A batch mixing stored rows (changed since) and new ones, as a spool
    // replay overlapping what landed: the new rows are stored, the stored
    // ones left as they were.
    let before = s.usage_totals(&UsageFilter::default(), None).await.unwrap();
    let fresh = varied_rows(25, 43, 1_700_000_000_000);
    let mut mixed: Vec<UsageRow> = big[..50]
        .iter()
        .map(|r| UsageRow {
            cost: 1e6,
            ..r.clone()
        })
        .collect();
    mixed.extend(fresh.iter().cloned());
    s.insert_usage(&mixed).await.unwrap();
    assert_eq!(
        count_usage(db).await,
        10_026,
        "the new rows of a mixed batch"
    );
    let after = s.usage_totals(&UsageFilter::default(), None).await.unwrap();
    let added: f64 = fresh.iter().map(|r| r.cost).sum();
    assert!(
        (after[0].cost - before[0].cost - added).abs() < 1e-6,
        "stored rows were rewritten: {} -> {} (+{added} expected)",
        before[0].cost,
        after[0].cost
    );
    // Batches that are not a multiple of the statement size: cut into the
    // cached statement sizes (199 = 100 + 64 + 32 + 2 + 1), every row kept,
    // the same row set twice still stored once.
    let mut stored = 10_026;
    for (seed, n) in [(7u64, 199usize), (8, 99), (9, 3), (10, 1)] {
        let rows = varied_rows(n, seed, 1_700_000_000_000);
        s.insert_usage(&rows).await.unwrap();
        s.insert_usage(&rows).await.unwrap();
        stored += n as i64;
        assert_eq!(count_usage(db).await, stored, "{n} rows");
    }
    let tot = s.usage_totals(&UsageFilter::default(), None).await.unwrap();
    assert_eq!(tot.len(), 1);
    assert_eq!(tot[0].key, "all");
    assert_eq!(tot[0].requests, stored);
    // NUL in client-provided text is stored (replaced), not fatal.
    let mut nul = usage_row("req_nul", 5);
    nul.alias = "a\0b".into();
    nul.tenant_id = Some("t\0".into());
    nul.ttft_ms = None;
    s.insert_usage(std::slice::from_ref(&nul)).await.unwrap();
    assert_eq!(count_usage(db).await, stored + 1);
    // Read back: NULs replaced, an absent ttft stored as NULL (not -1).
    let f = UsageFilter {
        alias: Some("a\u{FFFD}b".into()),
        ..UsageFilter::default()
    };
    let mut want = nul;
    want.alias = "a\u{FFFD}b".into();
    want.tenant_id = Some("t\u{FFFD}".into());
    assert_eq!(s.usage_rows(&f, 10).await.unwrap(), vec![want]);
}

#[derive(Default, Debug, Clone, PartialEq)]
struct Agg {
    requests: i64,
    errors: i64,
    input: i64,
    output: i64,
    cached: i64,
    cost: f64,
}

impl Agg {
    fn add(&mut self, r: &UsageRow) {
        self.requests += 1;
        self.errors += i64::from(r.status >= 400 || r.error_class.is_some());
        self.input += r.input_tokens;
        self.output += r.output_tokens;
        self.cached += r.cached_input_tokens;
        self.cost += r.cost;
    }
    fn matches(&self, t: &UsageTotals) -> bool {
        self.requests == t.requests
            && self.errors == t.errors
            && self.input == t.input_tokens
            && self.output == t.output_tokens
            && self.cached == t.cached_input_tokens
            && close(self.cost, t.cost)
    }
}

fn group_key(r: &UsageRow, g: Option<GroupBy>) -> String {
    match g {
        None => "all".into(),
        Some(GroupBy::Tenant) => r.tenant_id.clone().unwrap_or_default(),
        Some(GroupBy::User) => r.user_id.clone().unwrap_or_default(),
        Some(GroupBy::Key) => r.key_id.clone().unwrap_or_default(),
        Some(GroupBy::Model) => r.alias.clone(),
        Some(GroupBy::Provider) => r.provider.clone(),
    }
}

fn in_filter(r: &UsageRow, f: &UsageFilter) -> bool {
    f.from.is_none_or(|v| r.ts >= v)
        && f.to.is_none_or(|v| r.ts < v)
        && (f.tenant_id.is_none() || f.tenant_id == r.tenant_id)
        && (f.user_id.is_none() || f.user_id == r.user_id)
        && (f.key_id.is_none() || f.key_id == r.key_id)
        && f.alias.as_ref().is_none_or(|a| *a == r.alias)
        && f.provider.as_ref().is_none_or(|p| *p == r.provider)
}

async fn usage_reports_match_computed_values(db: &TestDb) {
    let s = &db.store;
    let t0 = 1_700_000_000_000 - (1_700_000_000_000 % 86_400_000) + 1_234; // mid-bucket start
    let rows = varied_rows(1_500, 7, t0);
    s.insert_usage(&rows).await.unwrap();

    let filters = vec![
        UsageFilter::default(),
        UsageFilter {
            from: Some(t0 + 3_600_000 * 5),
            to: Some(t0 + 86_400_000 * 2),
            ..Default::default()
        },
        UsageFilter {
            tenant_id: Some("ten_a".into()),
            ..Default::default()
        },
        UsageFilter {
            tenant_id: Some("ten_b".into()),
            alias: Some("gpt".into()),
            from: Some(t0 + 86_400_000),
            ..Default::default()
        },
        UsageFilter {
            key_id: Some("key_2".into()),
            provider: Some("anthropic".into()),
            ..Default::default()
        },
        UsageFilter {
            user_id: Some("usr_3".into()),
            to: Some(t0 + 86_400_000),
            ..Default::default()
        },
        UsageFilter {
            tenant_id: Some("ten_nobody".into()),
            ..Default::default()
        },
    ];
    let groups = [
        None,
        Some(GroupBy::Tenant),
        Some(GroupBy::User),
        Some(GroupBy::Key),
        Some(GroupBy::Model),
        Some(GroupBy::Provider),
    ];
    for f in &filters {
        let picked: Vec<&UsageRow> = rows.iter().filter(|r| in_filter(r, f)).collect();
        for g in groups {
            // Totals.
            let mut want: BTreeMap<String, Agg> = BTreeMap::new();
            for r in &picked {
                want.entry(group_key(r, g)).or_default().add(r);
            }
            if g.is_none() {
                want.entry("all".into()).or_default();
            }
            let got = s.usage_totals(f, g).await.unwrap();
            assert_eq!(
                got.iter().map(|t| t.key.clone()).collect::<Vec<_>>(),
                want.keys().cloned().collect::<Vec<_>>(),
                "groups for {f:?} / {g:?}"
            );
            for t in &got {
                assert!(t.bucket_start.is_none());
                assert!(
                    want[&t.key].matches(t),
                    "{f:?} {g:?}: {t:?} vs {:?}",
                    want[&t.key]
                );
            }
            // Series (hour and day).
            for (bucket, width) in [(Bucket::Hour, 3_600_000), (Bucket::Day, 86_400_000)] {
                let mut want: BTreeMap<(Millis, String), Agg> = BTreeMap::new();
                for r in &picked {
                    want.entry((r.ts / width * width, group_key(r, g)))
                        .or_default()
                        .add(r);
                }
                let got = s.usage_series(f, bucket, g).await.unwrap();
                assert_eq!(
                    got.iter()
                        .map(|t| (t.bucket_start.unwrap(), t.key.clone()))
                        .collect::<Vec<_>>(),
                    want.keys().cloned().collect::<Vec<_>>(),
                    "series buckets for {f:?} / {g:?} / {bucket:?}"
                );
                for t in &got {
                    let w = &want[&(t.bucket_start.unwrap(), t.key.clone())];
                    assert!(w.matches(t), "{t:?} vs {w:?}");
                }
            }
        }
        // Rows: newest first, limited.
        let mut want: Vec<&UsageRow> = picked.clone();
        want.sort_by(|a, b| b.ts.cmp(&a.ts).then(b.request_id.cmp(&a.request_id)));
        let got = s.usage_rows(f, 25).await.unwrap();
        let want: Vec<UsageRow> = want.into_iter().take(25).cloned().collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.request_id, w.request_id);
            assert_eq!(g, w);
        }
    }
    assert!(s
        .usage_rows(&UsageFilter::default(), 0)
        .await
        .unwrap()
        .is_empty());
}

async fn spend_since_counts_scope_from_time(db: &TestDb) {
    let s = &db.store;
    let t0 = 1_700_000_000_000;
    let rows = varied_rows(2_000, 11, t0);
    s.insert_usage(&rows).await.unwrap();
    let since = t0 + 86_400_000;
    for (scope, id) in [
        (Scope::Tenant, "ten_a"),
        (Scope::Tenant, "ten_c"),
        (Scope::User, "usr_2"),
        (Scope::Key, "key_3"),
        (Scope::Key, "key_none"),
    ] {
        let (mut cost, mut tokens) = (0.0, 0);
        for r in rows.iter().filter(|r| r.ts >= since) {
            let v = match scope {
                Scope::Tenant => &r.tenant_id,
                Scope::User => &r.user_id,
                Scope::Key => &r.key_id,
            };
            if v.as_deref() == Some(id) {
                cost += r.cost;
                tokens += r.input_tokens + r.output_tokens;
            }
        }
        let (c, t) = s.spend_since(scope, id, since).await.unwrap();
        assert!(close(c, cost), "{scope:?} {id}: {c} vs {cost}");
        assert_eq!(t, tokens, "{scope:?} {id}");
    }
    // The boundary is inclusive.
    let mut edge = usage_row("req_edge", 5_000);
    edge.tenant_id = Some("ten_edge".into());
    edge.status = 500; // failed rows count too
    s.insert_usage(&[edge]).await.unwrap();
    let (c, t) = s
        .spend_since(Scope::Tenant, "ten_edge", 5_000)
        .await
        .unwrap();
    assert!(close(c, 0.001));
    assert_eq!(t, 30);
    assert_eq!(
        s.spend_since(Scope::Tenant, "ten_edge", 5_001)
            .await
            .unwrap(),
        (0.0, 0)
    );
}

/// Migration 0002: the per-scope usage indexes leave out rows without the
/// scope, and a lookup by scope (`spend_since`'s statement, parameters
/// bound as the store binds them) still uses them on both databases.
async fn scope_lookups_use_the_partial_indexes(db: &TestDb) {
    let s = &db.store;
    s.insert_usage(&varied_rows(2_000, 11, 1_700_000_000_000))
        .await
        .unwrap();
    // A fresh connection, so a session setting cannot leak into the pool.
    let side = db.side_pool().await;
    let mut conn = side.acquire().await.unwrap();
    let pg = db.pg.is_some();
    if pg {
        sqlx::query("ANALYZE usage_log")
            .execute(&mut *conn)
            .await
            .unwrap();
        // Tiny tables are cheaper to scan: make the planner say whether it
        // *can* use the index at all.
        sqlx::query("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    for column in ["tenant_id", "user_id", "key_id"] {
        let index = format!("usage_log_by_{}", column.trim_end_matches("_id"));
        let def_sql = if pg {
            "SELECT indexdef AS d FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1"
        } else {
            "SELECT sql AS d FROM sqlite_master WHERE type = 'index' AND name = $1"
        };
        let def: String = sqlx::Row::try_get(
            &sqlx::query(def_sql)
                .bind(&index)
                .fetch_one(&mut *conn)
                .await
                .unwrap(),
            "d",
        )
        .unwrap();
        let normal = def.to_lowercase().replace(['(', ')'], "");
        assert!(
            normal.contains(&format!("where {column} is not null")),
            "{index} is not partial: {def}"
        );
        let query =
            format!("SELECT SUM(cost) AS cost FROM usage_log WHERE {column} = $1 AND ts >= $2");
        let explain = if pg {
            format!("EXPLAIN {query}")
        } else {
            format!("EXPLAIN QUERY PLAN {query}")
        };
        let rows = sqlx::query(&explain)
            .bind("x")
            .bind(0_i64)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        let plan: Vec<String> = rows
            .iter()
            .map(|r| {
                let col = if pg { 0 } else { 3 };
                sqlx::Row::try_get::<String, _>(r, col).unwrap()
            })
            .collect();
        assert!(
            plan.iter().any(|l| l.contains(&index)),
            "{column} = ? does not use {index}: {plan:?}"
        );
    }
    // The full indexes it replaces are gone (each row cost an entry in them).
    let old_sql = if pg {
        "SELECT COUNT(*) AS n FROM pg_indexes WHERE schemaname = current_schema() \
         AND indexname LIKE 'usage_log%_ts' AND indexname <> 'usage_log_ts'"
    } else {
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'index' AND name LIKE 'usage_log%_ts' AND name <> 'usage_log_ts'"
    };
    let n: i64 = sqlx::Row::try_get(
        &sqlx::query(old_sql).fetch_one(&mut *conn).await.unwrap(),
        "n",
    )
    .unwrap();
    assert_eq!(n, 0, "the full per-scope indexes are still there");
    drop(conn);
    side.close().await;
}

async fn alerts_fire_once(db: &TestDb) {
    let s = &db.store;
    assert!(s.record_alert("bud_1", 1_000, 0.8, 5).await.unwrap());
    assert!(!s.record_alert("bud_1", 1_000, 0.8, 6).await.unwrap());
    assert!(s.record_alert("bud_1", 1_000, 0.95, 7).await.unwrap());
    assert!(s.record_alert("bud_1", 2_000, 0.8, 8).await.unwrap());
    assert!(s.record_alert("bud_2", 1_000, 0.8, 9).await.unwrap());
    // Concurrent recorders: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.record_alert("bud_3", 0, 0.5, i).await.unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += i32::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert!(s.record_alert("bud_1", 1_000, f64::NAN, 1).await.is_err());
}

fn audit_event(id: &str, ts: Millis, tenant: Option<&str>) -> AuditEvent {
    AuditEvent {
        id: id.into(),
        ts,
        actor: "master".into(),
        tenant_id: tenant.map(Into::into),
        action: "key.create".into(),
        target: Some("key_1".into()),
        ip: Some("127.0.0.1".into()),
        outcome: "success".into(),
        details: json!({"name": "ci", "models": ["gpt"]}),
    }
}

async fn audit_insert_and_list(db: &TestDb) {
    let s = &db.store;
    let evs = vec![
        audit_event("aud_1", 100, Some("ten_1")),
        audit_event("aud_2", 200, None),
        audit_event("aud_3", 300, Some("ten_1")),
        audit_event("aud_4", 400, Some("ten_2")),
    ];
    s.insert_audit(&evs).await.unwrap();
    s.insert_audit(&evs[..2]).await.unwrap(); // idempotent by id
    s.insert_audit(&[]).await.unwrap();
    let all = s.list_audit(None, None, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["aud_4", "aud_3", "aud_2", "aud_1"]
    );
    assert_eq!(all[3], evs[0]);
    let t1 = s.list_audit(Some("ten_1"), None, 100).await.unwrap();
    assert_eq!(
        t1.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["aud_3", "aud_1"]
    );
    let recent = s.list_audit(None, Some(200), 100).await.unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(s.list_audit(None, None, 2).await.unwrap().len(), 2);
    assert_eq!(
        s.list_audit(Some("ten_1"), Some(101), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn audit_log_writes_file_and_db(db: &TestDb) {
    let path = db.dir.join("audit/audit.jsonl");
    let (log, task) = AuditLog::start(Some(db.store.clone()), Some(path.clone()));
    for i in 0..50 {
        log.record(audit_event(&format!("aud_{i:02}"), i, Some("ten_1")));
    }
    drop(log);
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<AuditEvent> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 50);
    assert_eq!(lines[7], audit_event("aud_07", 7, Some("ten_1")));
    assert_eq!(
        db.store.list_audit(None, None, 1_000).await.unwrap().len(),
        50
    );

    // Database down: the file still gets everything.
    let dead = Store::connect(&db.url).await.unwrap();
    dead.close().await;
    let path2 = db.dir.join("audit2.jsonl");
    let (log, task) = AuditLog::start(Some(dead), Some(path2.clone()));
    for i in 0..5 {
        log.record(audit_event(&format!("x_{i}"), i, None));
    }
    drop(log);
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read_to_string(&path2).unwrap().lines().count(), 5);
}

fn writer_cfg(db: &TestDb, name: &str) -> WriterConfig {
    WriterConfig {
        batch_size: 100,
        flush_interval: Duration::from_millis(20),
        spool_path: db.dir.join("spool").join(name),
        replay_interval: Duration::from_millis(100),
    }
}

async fn writer_writes_every_row(db: &TestDb) {
    let (tx, rx) = mpsc::channel(64);
    let cfg = writer_cfg(db, "a.jsonl");
    let spool = cfg.spool_path.clone();
    let w = tokio::spawn(run_usage_writer(db.store.clone(), rx, cfg));
    let rows = varied_rows(1_234, 3, 1_700_000_000_000);
    // 1,050 rows: ten full batches and a partial one, which must be written
    // by the flush interval while the channel stays open.
    for r in rows.iter().take(1_050) {
        tx.send(r.clone()).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while count_usage(db).await < 1_050 {
        assert!(
            std::time::Instant::now() < deadline,
            "partial batch not flushed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for r in rows.iter().skip(1_050) {
        tx.send(r.clone()).await.unwrap();
    }
    drop(tx); // channel close flushes everything
    let stats = tokio::time::timeout(Duration::from_secs(60), w)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.written, 1_234);
    assert_eq!((stats.spooled, stats.replayed), (0, 0));
    assert_eq!(count_usage(db).await, 1_234);
    assert!(!spool.exists());
}

/// The usage table disappears under the writer (renamed by another
/// connection: inserts and the writer's probe fail on both databases),
/// rows spool; it comes back, the spool replays; every row lands once.
async fn writer_spools_during_outage_and_replays_once(db: &TestDb) {
    let side = db.side_pool().await;
    let (tx, rx) = mpsc::channel(64);
    let cfg = writer_cfg(db, "b.jsonl");
    let spool = cfg.spool_path.clone();
    let w = tokio::spawn(run_usage_writer(db.store.clone(), rx, cfg));
    let rows = varied_rows(900, 5, 1_700_000_000_000);

    for r in &rows[..300] {
        tx.send(r.clone()).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count_usage(db).await < 300 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    sqlx::query("ALTER TABLE usage_log RENAME TO usage_log_offline")
        .execute(&side)
        .await
        .unwrap();
    for r in &rows[300..600] {
        tx.send(r.clone()).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let lines = std::fs::read_to_string(&spool)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if lines == 300 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spool has {lines} lines"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A few replay attempts fail while the table is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(spool.exists());

    sqlx::query("ALTER TABLE usage_log_offline RENAME TO usage_log")
        .execute(&side)
        .await
        .unwrap();
    side.close().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while spool.exists() {
        assert!(std::time::Instant::now() < deadline, "spool not replayed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count_usage(db).await, 600);

    for r in &rows[600..] {
        tx.send(r.clone()).await.unwrap();
    }
    drop(tx);
    let stats = tokio::time::timeout(Duration::from_secs(60), w)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stats.spooled, 300, "{stats:?}");
    assert_eq!(stats.replayed, 300, "{stats:?}");
    assert_eq!(stats.written, 600, "{stats:?}");
    assert_eq!(count_usage(db).await, 900);
    let got: HashSet<String> = db
        .store
        .usage_rows(&UsageFilter::default(), 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(got, rows.iter().map(|r| r.request_id.clone()).collect());
    assert!(!spool.exists());
}

/// The database is unreachable for a whole run (closed pool): at channel
/// close every row is in the spool; the next process replays it at start,
/// exactly once, even when the spool holds duplicates and a torn line.
async fn writer_spools_when_closed_and_next_run_replays(db: &TestDb) {
    let dead = Store::connect(&db.url).await.unwrap();
    dead.close().await;
    let cfg = writer_cfg(db, "c.jsonl");
    let spool = cfg.spool_path.clone();
    let rows = varied_rows(777, 9, 1_700_000_000_000);
    let (tx, rx) = mpsc::channel(1_000);
    for r in &rows {
        tx.send(r.clone()).await.unwrap();
    }
    drop(tx);
    let stats = tokio::time::timeout(
        Duration::from_secs(60),
        run_usage_writer(dead, rx, cfg.clone()),
    )
    .await
    .unwrap();
    assert_eq!((stats.written, stats.spooled, stats.replayed), (0, 777, 0));
    assert_eq!(
        std::fs::read_to_string(&spool).unwrap().lines().count(),
        777
    );
    assert_eq!(count_usage(db).await, 0);

    // A crash mid-append leaves a torn line; a later append still parses.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&spool)
            .unwrap();
        f.write_all(b"{\"request_id\":\"torn").unwrap();
    }
    let dead = Store::connect(&db.url).await.unwrap();
    dead.close().await;
    let (tx, rx) = mpsc::channel(10);
    tx.send(rows[0].clone()).await.unwrap(); // a duplicate
    drop(tx);
    let stats = run_usage_writer(dead, rx, cfg.clone()).await;
    assert_eq!(stats.spooled, 1);

    // Next process, database up: replayed at start, once.
    let (tx, rx) = mpsc::channel(10);
    let extra = usage_row("req_after", 1);
    tx.send(extra.clone()).await.unwrap();
    drop(tx);
    let stats = run_usage_writer(db.store.clone(), rx, cfg).await;
    assert_eq!(stats.replayed, 778, "{stats:?}");
    assert_eq!(stats.written, 1);
    assert_eq!(count_usage(db).await, 778);
    assert!(!spool.exists());
}

async fn errors_name_the_operation(db: &TestDb) {
    let s = Store::connect(&db.url).await.unwrap();
    s.close().await;
    let e = s.get_tenant("x").await.unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Db {
                op: "get_tenant",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("get_tenant"), "{e}");
    let e = s.insert_usage(&[usage_row("r", 1)]).await.unwrap_err();
    assert!(e.to_string().contains("insert_usage"), "{e}");
    assert!(Store::connect("mysql://x").await.is_err());
}

/// Usage rows go through their own SQLite connection (not sqlx's): it must
/// open the very file the URL names, percent-encoding and all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_usage_lands_in_the_file_the_url_names() {
    let dir = temp_dir();
    let url = format!("sqlite://{}/with%20space/usage%23.db", dir.display());
    let s = Store::connect(&url).await.unwrap();
    let rows = varied_rows(250, 3, 1_700_000_000_000);
    s.insert_usage(&rows).await.unwrap();
    assert_eq!(
        s.usage_rows(&UsageFilter::default(), 1_000)
            .await
            .unwrap()
            .len(),
        250
    );
    s.close().await;
    let file = dir.join("with space/usage#.db");
    assert!(file.exists(), "{} missing", file.display());
    // Read back by a fresh store on the same URL (the WAL was checkpointed
    // or is still beside the file: either way the rows are there).
    let again = Store::connect(&url).await.unwrap();
    assert_eq!(
        again
            .usage_rows(&UsageFilter::default(), 1_000)
            .await
            .unwrap()
            .len(),
        250
    );
    again.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sqlite_memory_database_works() {
    let s = Store::connect("sqlite::memory:").await.unwrap();
    s.create_tenant(&tenant("ten_1", "A")).await.unwrap();
    assert_eq!(s.list_tenants().await.unwrap().len(), 1);
    s.insert_usage(&[usage_row("r1", 1)]).await.unwrap();
    assert_eq!(
        s.usage_rows(&UsageFilter::default(), 5)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn unreachable_postgres_fails_fast_with_the_operation() {
    let t = std::time::Instant::now();
    let e = Store::connect("postgres://nobody@127.0.0.1:1/none")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("connect"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(15));
}
