//! `switchyard tenants|users|keys|usage`: the admin operations from the
//! command line, working directly on the governance database through the
//! same [`super::ops`] functions as the HTTP API (actor `cli` in the audit
//! log). Running gateways pick the changes up within their refresh interval.

use super::ops::{self, Actor, AuditTo, Ctx, KeyFilter, NewKey, NewTenant, NewUser, TenantPatch};
use super::usage::{records_csv, totals_csv, totals_table, Format};
use crate::config::{self, default_plans, Plan};
use crate::store::{Role, Store, TenantStatus, UsageFilter};
use anyhow::{anyhow, Context};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the database is.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DbArgs {
    /// Config file whose `governance.database_url` (and plans) to use.
    #[arg(long = "config", short = 'c', id = "db_config", global = true)]
    pub config: Option<PathBuf>,
    /// Database URL (else the config's, else $SWITCHYARD_DATABASE_URL,
    /// else sqlite://data/switchyard.db).
    #[arg(long, global = true)]
    pub database_url: Option<String>,
}

impl DbArgs {
    /// Fall back to the top-level `--config`.
    pub fn or_config(mut self, top: Option<PathBuf>) -> DbArgs {
        if self.config.is_none() {
            self.config = top;
        }
        self
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum TenantCmd {
    /// Create a tenant (a plan creates its rate limit and monthly budget).
    Create {
        name: String,
        /// basic, professional, enterprise (or a plan from the config).
        #[arg(long)]
        plan: Option<String>,
        /// active, suspended, trial, expired.
        #[arg(long)]
        status: Option<String>,
        /// Allowed model aliases, comma-separated (default: all, or the plan's).
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change a tenant's status, plan or name.
    Update {
        id: String,
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        plan: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        /// admin, developer (default), viewer, billing.
        #[arg(long)]
        role: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
    /// List users.
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum KeyCmd {
    /// Create a key; prints it once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// admin, developer, viewer, billing (default: the user's role, else developer).
        #[arg(long)]
        role: Option<String>,
        /// Allowed model aliases, comma-separated.
        #[arg(long, value_delimiter = ',')]
        models: Option<Vec<String>>,
        /// Lifetime, e.g. 30d, 12h.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key.
    Revoke { id: String },
    /// Rotate a key; prints the new one once. The old key keeps working for --overlap.
    Rotate {
        id: String,
        /// e.g. 1d (default), 2h, 0s.
        #[arg(long)]
        overlap: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
pub struct UsageArgs {
    /// Start: RFC 3339 or Unix ms.
    #[arg(long)]
    pub from: Option<String>,
    /// End (exclusive): RFC 3339 or Unix ms.
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub provider: Option<String>,
    /// tenant, user, key, model, provider.
    #[arg(long)]
    pub group_by: Option<String>,
    /// hour or day (a time series).
    #[arg(long)]
    pub bucket: Option<String>,
    /// table (default), json or csv.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Print individual records instead of totals (at most this many).
    #[arg(long)]
    pub records: Option<i64>,
}

/// The database URL and plans from the arguments, config and environment.
pub fn resolve(db: &DbArgs) -> anyhow::Result<(String, BTreeMap<String, Plan>)> {
    let mut plans = default_plans();
    let mut from_config = None;
    if let Some(path) = &db.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let name = path.display().to_string();
        let cfg = config::from_yaml(&text, &name, &config::process_env).map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(|p| format!("  {name}:{p}")).collect();
            anyhow!("{name} is invalid:\n{}", lines.join("\n"))
        })?;
        let g = cfg
            .governance
            .ok_or_else(|| anyhow!("{name}: governance is disabled in this config"))?;
        plans = g.plans;
        from_config = Some(g.database_url);
    }
    let url = db
        .database_url
        .clone()
        .or(from_config)
        .or_else(|| config::process_env("SWITCHYARD_DATABASE_URL"))
        .unwrap_or_else(|| "sqlite://data/switchyard.db".into());
    Ok((url, plans))
}

async fn open(db: &DbArgs) -> anyhow::Result<(Store, BTreeMap<String, Plan>)> {
    let (url, plans) = resolve(db)?;
    let store = Store::connect(&url)
        .await
        .with_context(|| "cannot open the governance database".to_string())?;
    Ok((store, plans))
}

fn ctx<'a>(store: &'a Store, plans: &'a BTreeMap<String, Plan>) -> Ctx<'a> {
    Ctx {
        store,
        plans,
        actor: Actor::Cli,
        ip: None,
        audit: AuditTo::Store,
        router: None,
        ledger: None,
    }
}

fn role(s: Option<String>) -> anyhow::Result<Option<Role>> {
    s.map(|r| {
        Role::parse(&r)
            .ok_or_else(|| anyhow!("unknown role `{r}`: admin, developer, viewer, billing"))
    })
    .transpose()
}

fn status(s: Option<String>) -> anyhow::Result<Option<TenantStatus>> {
    s.map(|r| {
        TenantStatus::parse(&r)
            .ok_or_else(|| anyhow!("unknown status `{r}`: active, suspended, trial, expired"))
    })
    .transpose()
}

fn secs(what: &str, s: &str) -> anyhow::Result<i64> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| anyhow!("--{what} `{s}` is not a duration like 30d, 12h, 90s ({e})"))?;
    i64::try_from(d.as_secs()).map_err(|_| anyhow!("--{what} `{s}` is too long"))
}

fn table(head: &[&str], rows: Vec<Vec<String>>) {
    let mut all = vec![head.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    all.extend(rows);
    let widths: Vec<usize> = (0..head.len())
        .map(|c| {
            all.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in &all {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

pub async fn tenants(cmd: TenantCmd, db: &DbArgs) -> anyhow::Result<()> {
    let (store, plans) = open(db).await?;
    let c = ctx(&store, &plans);
    match cmd {
        TenantCmd::Create {
            name,
            plan,
            status: st,
            models,
        } => {
            let t = ops::create_tenant(
                &c,
                NewTenant {
                    name,
                    status: status(st)?,
                    plan,
                    allowed_models: models,
                    metadata: None,
                },
            )
            .await?;
            println!(
                "created tenant {} ({}, {}, plan {})",
                t.id,
                t.name,
                t.status.as_str(),
                t.plan.as_deref().unwrap_or("none")
            );
        }
        TenantCmd::List { json } => {
            let ts = ops::list_tenants(&c).await?;
            if json {
                return print_json(&ts);
            }
            table(
                &["ID", "NAME", "STATUS", "PLAN", "MODELS"],
                ts.iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.name.clone(),
                            t.status.as_str().into(),
                            opt(&t.plan),
                            if t.allowed_models.is_empty() {
                                "*".into()
                            } else {
                                t.allowed_models.join(",")
                            },
                        ]
                    })
                    .collect(),
            );
        }
        TenantCmd::Update {
            id,
            status: st,
            plan,
            name,
        } => {
            let t = ops::update_tenant(
                &c,
                &id,
                TenantPatch {
                    name,
                    status: status(st)?,
                    plan,
                    allowed_models: None,
                    metadata: None,
                },
            )
            .await?;
            println!(
                "updated tenant {} ({}, {}, plan {})",
                t.id,
                t.name,
                t.status.as_str(),
                t.plan.as_deref().unwrap_or("none")
            );
        }
    }
    store.close().await;
    Ok(())
}

pub async fn users(cmd: UserCmd, db: &DbArgs) -> anyhow::Result<()> {
    let (store, plans) = open(db).await?;
    let c = ctx(&store, &plans);
    match cmd {
        UserCmd::Create {
            tenant,
            email,
            role: r,
            name,
        } => {
            let u = ops::create_user(
                &c,
                NewUser {
                    tenant_id: Some(tenant),
                    email,
                    name,
                    role: role(r)?,
                    disabled: None,
                },
            )
            .await?;
            println!(
                "created user {} ({}, {}) in tenant {}",
                u.id,
                u.email,
                u.role.as_str(),
                u.tenant_id
            );
        }
        UserCmd::List { tenant, json } => {
            let us = ops::list_users(&c, tenant.as_deref()).await?;
            if json {
                return print_json(&us);
            }
            table(
                &["ID", "TENANT", "EMAIL", "ROLE", "DISABLED"],
                us.iter()
                    .map(|u| {
                        vec![
                            u.id.clone(),
                            u.tenant_id.clone(),
                            u.email.clone(),
                            u.role.as_str().into(),
                            u.disabled.to_string(),
                        ]
                    })
                    .collect(),
            );
        }
    }
    store.close().await;
    Ok(())
}

fn show_secret(what: &str, c: &ops::CreatedKey) {
    println!(
        "{what} key {} (tenant {}, role {}{})",
        c.record.id,
        c.record.tenant_id,
        c.record.role.as_str(),
        c.record
            .expires_at
            .map(|e| format!(", expires {}", ops::format_time(e)))
            .unwrap_or_default()
    );
    println!();
    println!("{}", c.key);
    println!();
    eprintln!("WARNING: this is the only time the key is shown; it is stored only as a hash. Save it now.");
}

pub async fn keys(cmd: KeyCmd, db: &DbArgs) -> anyhow::Result<()> {
    let (store, plans) = open(db).await?;
    let c = ctx(&store, &plans);
    match cmd {
        KeyCmd::Create {
            tenant,
            user,
            name,
            role: r,
            models,
            expires_in,
        } => {
            let expires_in = expires_in.map(|e| secs("expires-in", &e)).transpose()?;
            let k = ops::create_key(
                &c,
                NewKey {
                    tenant_id: Some(tenant),
                    user_id: user,
                    name,
                    role: role(r)?,
                    allowed_models: models,
                    expires_at: None,
                    expires_in,
                    metadata: None,
                },
            )
            .await?;
            show_secret("created", &k);
        }
        KeyCmd::List { tenant, user, json } => {
            let ks = ops::list_keys(
                &c,
                KeyFilter {
                    tenant_id: tenant,
                    user_id: user,
                },
            )
            .await?;
            if json {
                let v: Vec<serde_json::Value> = ks.iter().map(ops::key_view).collect();
                return print_json(&v);
            }
            let now = crate::store::now_ms();
            table(
                &[
                    "ID", "PREFIX", "TENANT", "USER", "ROLE", "STATE", "EXPIRES", "NAME",
                ],
                ks.iter()
                    .map(|k| {
                        vec![
                            k.id.clone(),
                            format!("{}…", k.prefix),
                            k.tenant_id.clone(),
                            opt(&k.user_id),
                            k.role.as_str().into(),
                            ops::key_state(k, now).into(),
                            k.expires_at
                                .map(ops::format_time)
                                .unwrap_or_else(|| "-".into()),
                            opt(&k.name),
                        ]
                    })
                    .collect(),
            );
        }
        KeyCmd::Revoke { id } => {
            let k = ops::revoke_key(&c, &id).await?;
            println!("revoked key {} ({}…)", k.id, k.prefix);
        }
        KeyCmd::Rotate { id, overlap } => {
            let overlap = overlap.map(|o| secs("overlap", &o)).transpose()?;
            let k = ops::rotate_key(&c, &id, overlap).await?;
            show_secret("rotated: new", &k);
            eprintln!(
                "the old key {id} keeps working for {}s",
                overlap.unwrap_or(ops::DEFAULT_OVERLAP_SECS)
            );
        }
    }
    store.close().await;
    Ok(())
}

pub async fn usage(a: UsageArgs, db: &DbArgs) -> anyhow::Result<()> {
    let format =
        Format::parse(&a.format).ok_or_else(|| anyhow!("--format must be table, json or csv"))?;
    let time = |name: &str, v: &Option<String>| -> anyhow::Result<Option<i64>> {
        v.as_deref()
            .map(|s| {
                ops::parse_time(s)
                    .ok_or_else(|| anyhow!("--{name} `{s}` is not RFC 3339 or Unix milliseconds"))
            })
            .transpose()
    };
    let filter = UsageFilter {
        from: time("from", &a.from)?,
        to: time("to", &a.to)?,
        tenant_id: a.tenant,
        user_id: a.user,
        key_id: a.key,
        alias: a.model,
        provider: a.provider,
    };
    let group = a
        .group_by
        .as_deref()
        .map(|g| {
            super::input::parse_group(g)
                .ok_or_else(|| anyhow!("--group-by must be tenant, user, key, model or provider"))
        })
        .transpose()?;
    let bucket = a
        .bucket
        .as_deref()
        .map(|b| {
            super::input::parse_bucket(b).ok_or_else(|| anyhow!("--bucket must be hour or day"))
        })
        .transpose()?;
    let (store, plans) = open(db).await?;
    let c = ctx(&store, &plans);
    if let Some(limit) = a.records {
        let rows = ops::usage_records(&c, filter, Some(limit)).await?;
        match format {
            Format::Json => print_json(&rows)?,
            Format::Csv | Format::Table => print!("{}", records_csv(&rows)),
        }
    } else {
        let rows = ops::usage_report(
            &c,
            ops::UsageQuery {
                filter,
                group_by: group,
                bucket,
            },
        )
        .await?;
        match format {
            Format::Json => print_json(&rows)?,
            Format::Csv => print!("{}", totals_csv(&rows, group, bucket.is_some())),
            Format::Table => print!("{}", totals_table(&rows, group, bucket.is_some())),
        }
    }
    store.close().await;
    Ok(())
}
