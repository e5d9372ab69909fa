//! The `switchyard` command.

use anyhow::Context;

/// mimalloc: fewer instructions per allocation than glibc malloc and no
/// per-thread arenas that keep freed memory after load (bench/report.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hand freed memory back to the OS: the calling thread's mimalloc pages,
/// and, process-wide, the free pages of the C library's malloc arenas
/// (SQLite allocates there). Registered with `switchyard_server::trim`,
/// which calls it on a thread that has gone quiet after a burst.
#[allow(unsafe_code)]
fn collect_freed_memory(reach: switchyard_server::trim::Reach) {
    // SAFETY: `mi_collect` takes no pointers and may be called from any
    // thread at any time; it only frees pages the allocator no longer uses.
    unsafe { libmimalloc_sys::mi_collect(true) }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if reach == switchyard_server::trim::Reach::Process {
        // SAFETY: `malloc_trim` takes a size and no pointers; glibc locks
        // each arena while it returns that arena's free pages.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use switchyard_server::admin::cli as admin_cli;
use switchyard_server::config::{self, Config, Source};
use switchyard_server::demo;

#[derive(Parser, Debug)]
#[command(
    name = "switchyard",
    version,
    about = "Switchyard LLM gateway: one OpenAI- and Anthropic-compatible API in front of many providers."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Args, Debug, Default, Clone)]
struct ServeArgs {
    /// Config file (default: $SWITCHYARD_CONFIG, else ./switchyard.yaml if present,
    /// else providers from environment variables, else the built-in demo).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Listen address, overriding the config (host:port).
    #[arg(long, env = "SWITCHYARD_LISTEN")]
    listen: Option<String>,
    /// Log as JSON lines.
    #[arg(long)]
    json_logs: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the gateway (the default).
    Serve(ServeArgs),
    /// Validate a config file and report every problem with its location.
    Check {
        /// Config file (default: ./switchyard.yaml).
        file: Option<PathBuf>,
    },
    /// List the built-in provider kinds and the environment variables they read.
    Providers,
    /// Run the built-in mock providers (OpenAI, Anthropic, Gemini impersonations).
    Mock {
        /// Which to run: openai, anthropic, gemini or all.
        #[arg(long, default_value = "all")]
        flavor: String,
        /// First port; `all` uses three consecutive ports.
        #[arg(long, default_value_t = 4010)]
        port: u16,
        /// Require this upstream API key (default: accept any non-empty key).
        #[arg(long)]
        api_key: Option<String>,
    },
    /// Manage tenants (directly in the governance database).
    Tenants {
        #[command(subcommand)]
        cmd: admin_cli::TenantCmd,
        #[command(flatten)]
        db: admin_cli::DbArgs,
    },
    /// Manage users (directly in the governance database).
    Users {
        #[command(subcommand)]
        cmd: admin_cli::UserCmd,
        #[command(flatten)]
        db: admin_cli::DbArgs,
    },
    /// Manage virtual API keys (directly in the governance database).
    Keys {
        #[command(subcommand)]
        cmd: admin_cli::KeyCmd,
        #[command(flatten)]
        db: admin_cli::DbArgs,
    },
    /// Usage report from the governance database.
    Usage {
        #[command(flatten)]
        args: admin_cli::UsageArgs,
        #[command(flatten)]
        db: admin_cli::DbArgs,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.cmd, None | Some(Cmd::Serve(_)) | Some(Cmd::Mock { .. })) {
        // A command that prints and exits behaves like any Unix filter:
        // `switchyard check | head -1` ends it quietly when the reader goes
        // away (Rust ignores SIGPIPE, which turns the write into a panic).
        // Servers keep it ignored; sockets are written with MSG_NOSIGNAL anyway.
        default_sigpipe();
    }
    switchyard_server::trim::set_hook(collect_freed_memory);
    // Serving, this runtime only runs background work (usage and audit
    // writers, governance refresh, health probes, admin operations, the
    // demo providers): requests are served by the I/O worker threads that
    // `Running::serve` starts, one event loop per CPU.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if matches!(cli.cmd, None | Some(Cmd::Serve(_))) {
        builder.worker_threads(1);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            None => serve(cli.serve).await,
            Some(Cmd::Serve(a)) => serve(a).await,
            Some(Cmd::Check { file }) => check(file),
            Some(Cmd::Providers) => {
                providers();
                Ok(())
            }
            Some(Cmd::Mock {
                flavor,
                port,
                api_key,
            }) => mock(&flavor, port, api_key).await,
            Some(Cmd::Tenants { cmd, db }) => {
                admin_cli::tenants(cmd, &db.or_config(cli.serve.config)).await
            }
            Some(Cmd::Users { cmd, db }) => {
                admin_cli::users(cmd, &db.or_config(cli.serve.config)).await
            }
            Some(Cmd::Keys { cmd, db }) => {
                admin_cli::keys(cmd, &db.or_config(cli.serve.config)).await
            }
            Some(Cmd::Usage { args, db }) => {
                admin_cli::usage(args, &db.or_config(cli.serve.config)).await
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Restore SIGPIPE's default disposition (terminate) for this process.
#[allow(unsafe_code)]
fn default_sigpipe() {
    // SAFETY: `signal` with a constant handler at start-up, before any
    // thread is spawned; no Rust state depends on the disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn config_path(explicit: Option<PathBuf>) -> Option<PathBuf> {
    explicit
        .or_else(|| config::process_env("SWITCHYARD_CONFIG").map(PathBuf::from))
        .or_else(|| {
            let p = PathBuf::from("switchyard.yaml");
            p.exists().then_some(p)
        })
}

fn load_file(path: &std::path::Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let name = path.display().to_string();
    config::from_yaml(&text, &name, &config::process_env).map_err(|problems| {
        let mut msg = format!(
            "{name} is invalid ({} problem{}):",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for p in &problems {
            msg.push_str(&format!("\n  {name}:{p}"));
        }
        anyhow::anyhow!(msg)
    })
}

fn check(file: Option<PathBuf>) -> anyhow::Result<()> {
    let path = config_path(file).unwrap_or_else(|| PathBuf::from("switchyard.yaml"));
    let cfg = load_file(&path)?;
    println!(
        "{}: OK — {} provider(s), {} model alias(es), listening on {}",
        path.display(),
        cfg.providers.len(),
        cfg.aliases.len(),
        cfg.listen
    );
    for a in &cfg.aliases {
        let targets: Vec<String> = a
            .deployments
            .iter()
            .map(|d| format!("{}:{}", d.provider.name, d.model))
            .collect();
        println!("  {} → {}", a.name, targets.join(", "));
    }
    for w in config::unpriced_warnings(&cfg) {
        println!("warning: {w}");
    }
    Ok(())
}

fn providers() {
    println!(
        "{:<18} {:<10} {:<45} API KEY FROM",
        "KIND", "DIALECT", "DEFAULT BASE URL"
    );
    for p in config::preset_table() {
        let keys = if p.key_env.is_empty() {
            "-".to_owned()
        } else {
            p.key_env.join(" | ")
        };
        let keys = if p.key_required {
            keys
        } else {
            format!("{keys} (optional)")
        };
        let base = p
            .base_url
            .map(str::to_owned)
            .unwrap_or_else(|| match p.base_url_env {
                Some(e) => format!("(required; or ${e})"),
                None => "(required: base_url)".into(),
            });
        println!(
            "{:<18} {:<10} {:<45} {}",
            p.kind,
            p.dialect.as_str(),
            base,
            keys
        );
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logs(args.json_logs);
    let mut _demo_servers = Vec::new();
    let mut cfg = match config_path(args.config.clone()) {
        Some(path) => load_file(&path)?,
        None => match config::from_env(&config::process_env) {
            Some(c) => c,
            None => {
                // The demo key works even with SWITCHYARD_MASTER_KEY exported
                // (as the README's admin example does): only explicit
                // SWITCHYARD_API_KEYS replace it.
                let mut keys = config::gateway_keys_from_env(&config::process_env);
                if config::process_env("SWITCHYARD_API_KEYS").is_none() {
                    keys.insert(0, switchyard_core::provider::Secret::new(demo::DEMO_KEY));
                }
                let d = demo::start(None, keys)
                    .await
                    .context("starting the demo providers")?;
                _demo_servers = d.servers;
                d.config
            }
        },
    };
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if let Some(w) = config::process_env("SWITCHYARD_WORKERS").and_then(|w| w.trim().parse().ok()) {
        cfg.workers = w;
    }
    let addr: std::net::SocketAddr = cfg
        .listen
        .parse()
        .with_context(|| format!("invalid listen address `{}`", cfg.listen))?;
    if cfg.api_keys.is_empty() && !cfg.allow_unauthenticated {
        if addr.ip().is_loopback() {
            tracing::warn!("no gateway API keys configured (server.api_keys / SWITCHYARD_API_KEYS): serving without authentication on loopback");
            cfg.allow_unauthenticated = true;
        } else {
            anyhow::bail!("no gateway API keys configured and {addr} is not a loopback address; set SWITCHYARD_API_KEYS or server.api_keys (or server.allow_unauthenticated: true)");
        }
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let source = cfg.source.clone();
    let demo_key = (source == Source::Demo
        && cfg
            .api_keys
            .first()
            .is_some_and(|k| k.expose() == demo::DEMO_KEY))
    .then(|| demo::DEMO_KEY.to_owned());
    let aliases: Vec<String> = cfg.aliases.iter().map(|a| a.name.clone()).collect();
    let gov_db = cfg.governance.as_ref().map(|g| g.database_url.clone());
    let running = switchyard_server::build(cfg).await?;
    banner(&source, local, &aliases, demo_key.as_deref());
    if let Some(db) = gov_db {
        println!(
            "  governance: {} (admin API under /admin, OpenAPI at /openapi.json)\n",
            redact_url(&db)
        );
    }
    // Serves until SIGTERM/Ctrl-C, then drains requests, usage and audit.
    running.serve(listener, shutdown_signal()).await?;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// A database URL without its password.
fn redact_url(u: &str) -> String {
    match (u.find("://"), u.find('@')) {
        (Some(s), Some(at)) if at > s => match u[s + 3..at].find(':') {
            Some(c) => format!("{}:***{}", &u[..s + 3 + c], &u[at..]),
            None => u.to_owned(),
        },
        _ => u.to_owned(),
    }
}

fn banner(source: &Source, addr: std::net::SocketAddr, aliases: &[String], demo_key: Option<&str>) {
    let v = env!("CARGO_PKG_VERSION");
    let base = format!("http://{addr}");
    match source {
        Source::Demo => {
            println!("Switchyard {v} — DEMO MODE (no provider keys found)");
            println!("  Serving the built-in DEMO providers: local mocks impersonating OpenAI, Anthropic and Gemini.");
            println!("  Their replies are canned and labelled [demo-…]; set OPENAI_API_KEY / ANTHROPIC_API_KEY / GEMINI_API_KEY");
            println!("  (or write switchyard.yaml) to serve real providers.");
        }
        Source::Environment => println!("Switchyard {v} — providers from environment variables"),
        Source::File(f) => println!("Switchyard {v} — config {f}"),
    }
    println!("  listening on {base}");
    println!("  models: {}", aliases.join(", "));
    let key = demo_key.unwrap_or("$SWITCHYARD_API_KEY");
    if let Some(k) = demo_key {
        println!("  gateway key: {k}");
    }
    let m = |pref: &str, fallback: usize| {
        aliases
            .iter()
            .find(|a| a.starts_with(pref))
            .or_else(|| aliases.get(fallback))
            .cloned()
            .unwrap_or_else(|| "MODEL".into())
    };
    let openai_model = m("demo-openai", 0);
    let anth_model = m("demo-anthropic", 0);
    let gem_model = m("demo-gemini", 0);
    println!("\nTry:");
    println!("  curl -s {base}/v1/chat/completions -H \"Authorization: Bearer {key}\" -H 'Content-Type: application/json' \\\n    -d '{{\"model\":\"{openai_model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello!\"}}]}}'");
    println!("  curl -sN {base}/v1/chat/completions -H \"Authorization: Bearer {key}\" -H 'Content-Type: application/json' \\\n    -d '{{\"model\":\"{gem_model}\",\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"Stream please\"}}]}}'");
    println!("  curl -s {base}/v1/messages -H \"x-api-key: {key}\" -H 'anthropic-version: 2023-06-01' -H 'Content-Type: application/json' \\\n    -d '{{\"model\":\"{anth_model}\",\"max_tokens\":256,\"messages\":[{{\"role\":\"user\",\"content\":\"Hi Claude\"}}]}}'");
    println!();
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
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received: finishing in-flight requests");
}

async fn mock(flavor: &str, port: u16, api_key: Option<String>) -> anyhow::Result<()> {
    use switchyard_mock::{Flavor, MockOptions, MockServer};
    let all = [
        (Flavor::OpenAi, "openai"),
        (Flavor::Anthropic, "anthropic"),
        (Flavor::Gemini, "gemini"),
    ];
    let chosen: Vec<_> = all
        .iter()
        .filter(|(_, n)| flavor == "all" || flavor == *n)
        .collect();
    if chosen.is_empty() {
        anyhow::bail!("unknown flavor `{flavor}`: use openai, anthropic, gemini or all");
    }
    let mut servers = Vec::new();
    for (i, (f, name)) in chosen.iter().enumerate() {
        let p = port
            .checked_add(u16::try_from(i)?)
            .context("port out of range")?;
        let l = tokio::net::TcpListener::bind(("127.0.0.1", p))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{p}"))?;
        let s = MockServer::start_on(
            l,
            MockOptions {
                flavor: *f,
                api_key: api_key.clone(),
                label: format!("mock-{name}"),
            },
        )
        .await?;
        println!("mock {name:<9} base_url: {}", s.base_url());
        servers.push(s);
    }
    println!("(Ctrl-C to stop)");
    shutdown_signal().await;
    for s in servers {
        s.shutdown().await;
    }
    Ok(())
}
