//! Test databases: a temp SQLite file, or a fresh schema in the PostgreSQL
//! at `SWITCHYARD_TEST_DATABASE_URL` (default postgres@127.0.0.1:5432/test).
//! Without PostgreSQL, `pg()` prints SKIPPED and returns None — except under
//! `CI=true`, where it panics: CI must run every test for real.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

pub struct TestDb {
    /// The URL the gateway should use.
    pub url: String,
    pub dir: PathBuf,
    pg: Option<(String, String)>,
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "switchyard-{tag}-{}-{}",
        std::process::id(),
        switchyard_server::store::new_id("").to_lowercase()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn pg_base() -> String {
    std::env::var("SWITCHYARD_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_PG.into())
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = temp_dir("gov");
        TestDb {
            url: format!("sqlite://{}/switchyard.db", dir.display()),
            dir,
            pg: None,
        }
    }

    /// A fresh schema; `via` replaces host:port (e.g. a proxy) in the URL the gateway gets.
    pub async fn pg(via: Option<std::net::SocketAddr>) -> Option<TestDb> {
        let base = pg_base();
        let admin = match tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&base),
        )
        .await
        {
            Ok(Ok(p)) => p,
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("PostgreSQL not reachable at {base} ({why}) and CI=true");
                }
                eprintln!("SKIPPED: PostgreSQL not reachable at {base} ({why}) (set SWITCHYARD_TEST_DATABASE_URL)");
                return None;
            }
        };
        let schema = format!(
            "sy_gov_{}",
            switchyard_server::store::new_id("").to_lowercase()
        );
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let mut url = base.clone();
        if let Some(addr) = via {
            let at = url
                .find('@')
                .map_or(url.find("://").unwrap() + 3, |i| i + 1);
            let end = url[at..].find('/').map_or(url.len(), |i| at + i);
            url.replace_range(at..end, &addr.to_string());
        }
        let sep = if url.contains('?') { '&' } else { '?' };
        url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        Some(TestDb {
            url,
            dir: temp_dir("gov"),
            pg: Some((base, schema)),
        })
    }

    pub fn is_pg(&self) -> bool {
        self.pg.is_some()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((base, schema)) = self.pg.take() {
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async {
                    if let Ok(p) = sqlx::postgres::PgPoolOptions::new()
                        .max_connections(1)
                        .connect(&base)
                        .await
                    {
                        let _ = sqlx::query("SET lock_timeout = '10s'").execute(&p).await;
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
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

/// A TCP proxy in front of PostgreSQL whose link can be cut and restored,
/// to take the database away from a running gateway.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    pub async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, rx) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*rx.borrow() {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Proxy { addr, up }
    }

    pub fn set_up(&self, up: bool) {
        let _ = self.up.send(up);
    }
}

/// host:port of the PostgreSQL under test.
pub fn pg_target() -> String {
    let base = pg_base();
    let at = base
        .find('@')
        .map_or(base.find("://").unwrap_or(0) + 3, |i| i + 1);
    let end = base[at..].find('/').map_or(base.len(), |i| at + i);
    base[at..end].to_owned()
}
