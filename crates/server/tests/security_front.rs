//! Issue 18 §4 and §7, the front door: what a slow, idle, keyless or
//! oversized client can hold, and the SIGTERM drain.
//!
//! Each test configures short timeouts so it runs in seconds.
#![allow(clippy::unwrap_used)]

mod common;

use common::{chat, rig, Rig, KEY};
use std::time::{Duration, Instant};
use switchyard_mock::Flavor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn gateway(server: &str) -> Rig {
    let yaml = format!(
        r#"
server:
  api_keys: ["${{GW_KEY}}"]
{server}
providers:
  oai: {{ kind: openai, base_url: "{{oai}}", api_key: "${{K}}" }}
models:
  gpt: {{ deployments: [{{ provider: oai, model: gpt-4o }}] }}
"#
    );
    rig(&[("oai", Flavor::OpenAi)], &yaml).await
}

async fn connect(base: &str) -> TcpStream {
    TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Read until the peer closes (or `within` passes); what was read, and
/// whether it closed.
async fn read_to_close(s: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Read one response head (up to the blank line) within `within`.
async fn read_head(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn slowloris_headers_are_cut_after_the_header_timeout() {
    let g = gateway("  header_timeout: 1s\n  idle_timeout: 30s\n").await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut s = connect(&g.base).await;
        s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        clients.push(s);
    }
    let t = Instant::now();
    // One header line every 300 ms, never the blank line.
    let mut closed = 0;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        closed = 0;
        for s in &mut clients {
            if s.write_all(format!("x-drip-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                closed += 1;
                continue;
            }
            let mut b = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
                _ => {}
            }
        }
        if closed == clients.len() {
            break;
        }
    }
    assert_eq!(closed, clients.len(), "dripping clients still connected");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let g = gateway("  header_timeout: 1s\n  idle_timeout: 3s\n").await;
    // A fresh connection that never sends a byte.
    let mut silent = connect(&g.base).await;
    // A keep-alive connection, idle after one request.
    let mut used = connect(&g.base).await;
    used.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut used, Duration::from_secs(5)).await.unwrap();
    assert_eq!(status(&head), 200, "{head}");
    // The idle timeout is not the header timeout: past 1 s, an idle
    // connection still takes a request.
    let mut third = connect(&g.base).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    third
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut third, Duration::from_secs(5)).await.unwrap();
    assert_eq!(status(&head), 200, "{head}");
    let t = Instant::now();
    let (_, c1) = read_to_close(&mut silent, Duration::from_secs(6)).await;
    let (_, c2) = read_to_close(&mut used, Duration::from_secs(6)).await;
    assert!(c1 && c2, "idle connections still open");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test]
async fn slow_bodies_get_408_after_the_body_timeout() {
    let g = gateway("  body_timeout: 1s\n").await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut s = connect(&g.base).await;
        let head = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"model\":");
        s.write_all(head.as_bytes()).await.unwrap();
        clients.push(s);
    }
    let t = Instant::now();
    for s in &mut clients {
        let head = read_head(s, Duration::from_secs(5))
            .await
            .expect("no answer");
        assert_eq!(status(&head), 408, "{head}");
        let (_, closed) = read_to_close(s, Duration::from_secs(3)).await;
        assert!(closed);
    }
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    // Admin and other router paths too: a body that never finishes.
    let mut s = connect(&g.base).await;
    s.write_all(format!("POST /admin/tenants HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{").as_bytes()).await.unwrap();
    let (_, closed) = read_to_close(&mut s, Duration::from_secs(4)).await;
    assert!(closed, "admin slow body still held");
}

#[tokio::test]
async fn connections_past_the_limit_are_refused_at_once() {
    let g = gateway("  max_connections: 3\n").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect(&g.base).await;
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            status(&read_head(&mut s, Duration::from_secs(5)).await.unwrap()),
            200
        );
        held.push(s);
    }
    let mut extra = connect(&g.base).await;
    let (text, closed) = read_to_close(&mut extra, Duration::from_secs(2)).await;
    assert!(closed, "fourth connection held open");
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("retry-after: 1"), "{text}");
    // A slot freed is a slot taken.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = g
        .http
        .get(format!("{}/health", g.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// One source address cannot take every slot: past its share it is
/// refused, while another address is still served.
#[tokio::test]
async fn one_address_cannot_hold_every_connection() {
    let g = gateway("  max_connections: 10\n  max_connections_per_ip: 2\n").await;
    let addr: std::net::SocketAddr = g.base.trim_start_matches("http://").parse().unwrap();
    let from = |ip: [u8; 4]| async move {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(std::net::SocketAddr::from((ip, 0))).unwrap();
        sock.connect(addr).await.unwrap()
    };
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = from([127, 0, 0, 1]).await;
        s.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            status(&read_head(&mut s, Duration::from_secs(5)).await.unwrap()),
            200
        );
        held.push(s);
    }
    let mut third = from([127, 0, 0, 1]).await;
    let (text, closed) = read_to_close(&mut third, Duration::from_secs(2)).await;
    assert!(closed, "a third connection from the same address held open");
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    // Another address still gets in.
    let mut other = from([127, 0, 0, 2]).await;
    other
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        status(&read_head(&mut other, Duration::from_secs(5)).await.unwrap()),
        200
    );
    // A closed connection gives its address's slot back.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = from([127, 0, 0, 1]).await;
    again
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        status(&read_head(&mut again, Duration::from_secs(5)).await.unwrap()),
        200
    );
}

#[tokio::test]
async fn a_keyless_caller_is_answered_before_its_body_is_sent() {
    let g = gateway("  max_body_size: 8MiB\n").await;
    for (path, key) in [
        ("/v1/chat/completions", None),
        ("/v1/chat/completions", Some("sk-wrong")),
        ("/v1/messages", Some("sk-wrong")),
        ("/v1/embeddings", None),
        ("/admin/tenants", Some("sk-wrong")),
        ("/v1/models", None),
    ] {
        let mut s = connect(&g.base).await;
        let auth = key
            .map(|k| format!("x-api-key: {k}\r\n"))
            .unwrap_or_default();
        // Five MB announced, none of it sent.
        let head = format!("POST {path} HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: 5000000\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        let t = Instant::now();
        let head = read_head(&mut s, Duration::from_secs(3))
            .await
            .unwrap_or_else(|| panic!("{path}: no answer before the body"));
        assert_eq!(status(&head), 401, "{path}: {head}");
        assert!(t.elapsed() < Duration::from_secs(1), "{path}");
    }
    // A client waiting for `100 Continue` gets the 401 instead, not an
    // invitation to send its body.
    for path in ["/v1/chat/completions", "/admin/tenants"] {
        let mut s = connect(&g.base).await;
        s.write_all(format!("POST {path} HTTP/1.1\r\nhost: x\r\nx-api-key: nope\r\nexpect: 100-continue\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n").as_bytes()).await.unwrap();
        let head = read_head(&mut s, Duration::from_secs(3)).await.unwrap();
        assert_eq!(status(&head), 401, "{path}: {head}");
    }
    // A small body that is all there is answered and the connection kept.
    let mut s = connect(&g.base).await;
    let body = r#"{"model":"gpt","messages":[]}"#;
    for _ in 0..2 {
        s.write_all(format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-api-key: nope\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()).as_bytes()).await.unwrap();
        let head = read_head(&mut s, Duration::from_secs(3)).await.unwrap();
        assert_eq!(status(&head), 401, "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let have = head.len() - head.find("\r\n\r\n").unwrap() - 4;
        let mut rest = vec![0u8; len - have];
        s.read_exact(&mut rest).await.unwrap();
    }
}

#[tokio::test]
async fn a_declared_length_past_the_limit_is_413_at_once() {
    let g = gateway("  max_body_size: 1MiB\n").await;
    for (path, auth) in [
        (
            "/v1/chat/completions",
            format!("authorization: Bearer {KEY}\r\n"),
        ),
        ("/v1/messages", format!("x-api-key: {KEY}\r\n")),
        ("/v1/embeddings", String::new()),
        ("/admin/tenants", format!("authorization: Bearer {KEY}\r\n")),
    ] {
        let mut s = connect(&g.base).await;
        let head = format!("POST {path} HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: 2000000\r\n\r\n");
        s.write_all(head.as_bytes()).await.unwrap();
        let t = Instant::now();
        let (text, closed) = read_to_close(&mut s, Duration::from_secs(3)).await;
        assert_eq!(status(&text), 413, "{path}: {text}");
        assert!(closed && t.elapsed() < Duration::from_secs(1), "{path}");
        let want = if path == "/v1/messages" {
            "request_too_large"
        } else {
            "exceeds the gateway limit"
        };
        assert!(text.contains(want), "{path}: {text}");
    }
}

#[tokio::test]
async fn an_empty_credential_is_no_credential() {
    let g = gateway("").await;
    let body = chat("gpt", "hi");
    let url = format!("{}/v1/chat/completions", g.base);
    let ok: &[&[(&str, &str)]] = &[
        &[("authorization", "Bearer "), ("x-api-key", KEY)],
        &[("authorization", "Bearer"), ("api-key", KEY)],
        &[("authorization", "bearer    "), ("x-api-key", KEY)],
        &[("authorization", ""), ("x-api-key", KEY)],
        &[("x-api-key", ""), ("api-key", KEY)],
        &[("authorization", &format!("BEARER {KEY}"))],
        &[
            ("authorization", &format!("Bearer {KEY}")),
            ("x-api-key", ""),
        ],
        &[("authorization", KEY)],
    ];
    for headers in ok {
        let mut req = g.http.post(&url).json(&body);
        for (k, v) in *headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{headers:?}: {}", r.text().await.unwrap());
    }
    let refused: &[&[(&str, &str)]] = &[
        &[("authorization", "Bearer ")],
        &[("authorization", "Bearer "), ("x-api-key", " ")],
        &[("authorization", "Bearer sk-wrong"), ("x-api-key", KEY)],
        &[("authorization", &format!("Bearerx{KEY}"))],
    ];
    for headers in refused {
        let mut req = g.http.post(&url).json(&body);
        for (k, v) in *headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{headers:?}");
    }
}

#[tokio::test]
async fn buffered_request_bytes_are_capped_with_503_and_retry_after() {
    let g = gateway("  max_body_size: 1MiB\n  max_buffered: 1500KiB\n").await;
    // One request holds 1 MB (declared, being sent slowly).
    let mut slow = connect(&g.base).await;
    slow.write_all(format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n{{").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Another 600 kB would pass 1.5 MiB: 503 at once, in the route's shape.
    let big = format!(
        "{{\"model\":\"gpt\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
        "a".repeat(600_000)
    );
    let r = g
        .http
        .post(format!("{}/v1/chat/completions", g.base))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.max_buffered"),
        "{v}"
    );
    // A small one still fits.
    let r = common::post_openai(&g.http, &g.base, KEY, &chat("gpt", "hi")).await;
    assert_eq!(r.status(), 200);
    // Once the slow one is gone, the big one is served.
    drop(slow);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = g
        .http
        .post(format!("{}/v1/chat/completions", g.base))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        g.state.buffered.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// The real binary: SIGTERM with slow clients connected fails `/ready`
/// during `shutdown_delay`, then drains for `shutdown_grace` at most and
/// exits cleanly.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_drains_for_the_grace_period_then_exits() {
    let mock = switchyard_mock::MockServer::start(switchyard_mock::MockOptions {
        flavor: Flavor::OpenAi,
        api_key: None,
        label: "oai".into(),
    })
    .await
    .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("switchyard-front-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("sigterm.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"
server:
  listen: "127.0.0.1:{port}"
  api_keys: ["${{GW}}"]
  header_timeout: 60s
  body_timeout: 60s
  shutdown_delay: 1s
  shutdown_grace: 2s
governance: {{ enabled: false }}
providers:
  oai: {{ kind: openai, base_url: "{}", api_key: "${{OAI}}" }}
models:
  gpt: {{ deployments: [{{ provider: oai, model: gpt-4o }}] }}
"#,
            mock.base_url()
        ),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("--config")
        .arg(&cfg)
        .env_remove("SWITCHYARD_CONFIG")
        .env_remove("SWITCHYARD_LISTEN")
        .env("GW", KEY)
        .env("OAI", "k")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let t = Instant::now();
    while http.get(format!("{base}/ready")).send().await.is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ten slow clients, each in the middle of sending a body.
    let mut slow = Vec::new();
    for _ in 0..10 {
        let mut s = connect(&base).await;
        s.write_all(format!("POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{{").as_bytes()).await.unwrap();
        slow.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = child.0.id();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let signalled = Instant::now();
    // During the delay the listener still answers, and `/ready` says no.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = http.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("draining"));
    // Keep the slow clients alive with a byte now and then.
    let exited = async {
        loop {
            for s in &mut slow {
                let _ = s.write_all(b" ").await;
            }
            if let Some(st) = child.0.try_wait().unwrap() {
                return st;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let st = tokio::time::timeout(Duration::from_secs(10), exited)
        .await
        .expect("still running 10 s after SIGTERM");
    assert!(st.success(), "{st:?}");
    let took = signalled.elapsed();
    // 1 s delay + 2 s grace, and not much more.
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(6),
        "{took:?}"
    );
    for s in &mut slow {
        let (_, closed) = read_to_close(s, Duration::from_secs(1)).await;
        assert!(closed);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Kills the child if the test fails before it exits.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn front_limits_have_safe_defaults_and_are_validated() {
    let env = |k: &str| (k == "K").then(|| "k".to_owned());
    let base = "providers:\n  oai: { kind: openai, api_key: \"${K}\" }\n";
    let cfg = switchyard_server::config::from_yaml(base, "t.yaml", &env).unwrap();
    let f = cfg.front;
    assert_eq!(f.header_timeout, Duration::from_secs(10));
    assert_eq!(f.body_timeout, Duration::from_secs(30));
    assert_eq!(f.idle_timeout, Duration::from_secs(75));
    assert_eq!(f.max_connections, 4096);
    assert_eq!(f.max_connections_per_ip, 1024);
    assert_eq!(f.max_buffered, 256 << 20);
    assert_eq!(f.shutdown_grace, Duration::from_secs(30));
    assert_eq!(f.shutdown_delay, Duration::ZERO);
    assert_eq!(cfg.max_body_size, 16 << 20);
    let bad = format!("server:\n  max_body_size: 8MiB\n  max_buffered: 1MiB\n  max_connections: 0\n  header_timeout: soon\n{base}");
    let problems = switchyard_server::config::from_yaml(&bad, "t.yaml", &env).unwrap_err();
    let text = format!("{problems:?}");
    for key in [
        "server.max_buffered",
        "server.max_connections",
        "server.header_timeout",
    ] {
        assert!(text.contains(key), "{key}: {text}");
    }
    // A max_body_size above the default cap raises the cap with it.
    let big = format!("server:\n  max_body_size: 512MiB\n{base}");
    let cfg = switchyard_server::config::from_yaml(&big, "t.yaml", &env).unwrap();
    assert_eq!(cfg.front.max_buffered, 512 << 20);
}

/// In process: after `shutdown_grace`, a request still waiting on its
/// upstream is cut, and its usage is recorded all the same.
#[tokio::test]
async fn requests_left_after_the_grace_are_cut_and_recorded() {
    let mock = switchyard_mock::MockServer::start(switchyard_mock::MockOptions {
        flavor: Flavor::OpenAi,
        api_key: None,
        label: "oai".into(),
    })
    .await
    .unwrap();
    mock.set_sticky_fault(Some(switchyard_mock::Fault::Hang));
    let yaml = format!(
        r#"
server:
  api_keys: ["${{GW}}"]
  shutdown_grace: 1s
governance: {{ enabled: false }}
providers:
  oai: {{ kind: openai, base_url: "{}", api_key: "${{GW}}" }}
models:
  gpt: {{ deployments: [{{ provider: oai, model: gpt-4o }}] }}
"#,
        mock.base_url()
    );
    let env = |k: &str| (k == "GW").then(|| KEY.to_owned());
    let cfg = switchyard_server::config::from_yaml(&yaml, "t.yaml", &env).unwrap();
    let (usage, writer) = switchyard_server::usage::UsageSink::new();
    tokio::spawn(writer);
    let state = switchyard_server::state::AppState::new(cfg, usage).unwrap();
    state
        .usage
        .totals()
        .keep_recent(switchyard_server::usage::RECENT);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(switchyard_server::serve(listener, state.clone(), async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    let pending = tokio::spawn({
        let url = format!("{base}/v1/chat/completions");
        let http = http.clone();
        async move {
            http.post(url)
                .bearer_auth(KEY)
                .json(&chat("gpt", "hi"))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("still serving 5 s after shutdown")
        .unwrap()
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(
        pending.await.unwrap().is_err(),
        "the cut request was answered"
    );
    assert!(state.draining.load(std::sync::atomic::Ordering::Relaxed));
    let mut recent = Vec::new();
    for _ in 0..100 {
        recent = state.usage.totals().recent();
        if !recent.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(recent.len(), 1, "no usage record for the cut request");
}
