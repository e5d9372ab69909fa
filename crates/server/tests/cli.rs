//! The `switchyard` binary: `check`, `providers`, and refusing to serve an
//! invalid config.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("switchyard-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn check_reports_every_problem_with_line_and_fix() {
    let d = tmpdir("bad");
    let f = write(
        &d,
        "bad.yaml",
        "providers:\n  openai:\n    kind: openai\n    api_key: sk-inline-secret\n  x:\n    kind: opnai\nmodels:\n  fast:\n    deployments:\n      - provider: nope\n        model: m\n",
    );
    let out = bin().arg("check").arg(&f).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 problems"), "{err}");
    assert!(err.contains("line 4: providers.openai.api_key"), "{err}");
    assert!(
        err.contains("line 6: providers.x.kind") && err.contains("did you mean `openai`"),
        "{err}"
    );
    assert!(
        err.contains("line 10: models.fast.deployments[0].provider"),
        "{err}"
    );
    assert_eq!(err.matches("fix:").count(), 3, "{err}");
    assert!(
        !err.contains("sk-inline-secret"),
        "secrets are never echoed: {err}"
    );

    // The server refuses to start with the same messages.
    let out = bin().arg("serve").arg("--config").arg(&f).output().unwrap();
    assert!(!out.status.success());
    let serve_err = String::from_utf8_lossy(&out.stderr);
    assert!(
        serve_err.contains("line 4: providers.openai.api_key"),
        "{serve_err}"
    );
}

#[test]
fn check_accepts_the_example_config() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../switchyard.example.yaml");
    let out = bin()
        .arg("check")
        .arg(example)
        .envs([
            ("SWITCHYARD_API_KEY", "gw"),
            ("OPENAI_API_KEY", "o"),
            ("ANTHROPIC_API_KEY", "a"),
            ("GEMINI_API_KEY", "g"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("3 provider(s), 3 model alias(es)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("smart → openai:gpt-4o, anthropic:claude-sonnet-4-5"),
        "{stdout}"
    );
    // Without the env vars the same file names each missing one.
    let out = bin().arg("check").arg(example).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`OPENAI_API_KEY` is not set"));
}

#[test]
fn providers_lists_at_least_17_kinds_with_their_env_vars() {
    let out = bin().arg("providers").output().unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    let kinds: Vec<&str> = s
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(kinds.len() >= 17, "{s}");
    for (k, env) in [
        ("openai", "OPENAI_API_KEY"),
        ("azure", "AZURE_OPENAI_API_KEY"),
        ("deepseek", "DEEPSEEK_API_KEY"),
        ("qwen", "DASHSCOPE_API_KEY"),
        ("ollama", "OLLAMA_API_KEY"),
    ] {
        let line = s
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("{k} missing: {s}"));
        assert!(line.contains(env), "{line}");
    }
}

/// `switchyard check | head -1` and `switchyard providers | head -1`: when the
/// reader goes away the command ends quietly (like any Unix filter), never
/// with a "failed printing to stdout" panic.
#[test]
fn closed_stdout_is_not_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let d = tmpdir("pipe");
    let f = write(
        &d,
        "ok.yaml",
        "providers:\n  openai:\n    kind: openai\n    api_key: ${OPENAI_API_KEY}\nmodels:\n  fast:\n    deployments:\n      - provider: openai\n        model: gpt-4o\n",
    );
    for args in [
        vec!["check".to_owned(), f.display().to_string()],
        vec!["providers".to_owned()],
    ] {
        let mut child = bin()
            .args(&args)
            .env("OPENAI_API_KEY", "sk-test")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before the first line
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            out.status.success() || out.status.signal() == Some(13),
            "{args:?}: {:?} {err}",
            out.status
        );
    }
}

/// The README's order of things: export SWITCHYARD_MASTER_KEY (the admin
/// example), then start the gateway with no config. Demo mode still accepts
/// the demo key its banner prints, and the master key too.
#[tokio::test]
async fn demo_key_works_with_a_master_key_exported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = tmpdir("demo-master");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SWITCHYARD_MASTER_KEY", "sk-master-cli-test")
        .env("SWITCHYARD_DATA_DIR", d.join("data"))
        .env("SWITCHYARD_LISTEN", format!("127.0.0.1:{port}"))
        .current_dir(&d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "the demo gateway started");
    for key in ["sk-switchyard-demo", "sk-master-cli-test"] {
        let r = http
            .post(format!("{base}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&serde_json::json!({"model": "demo-openai", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{key}: {}",
            r.text().await.unwrap_or_default()
        );
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let banner = String::from_utf8_lossy(&out.stdout);
    assert!(
        banner.contains("gateway key: sk-switchyard-demo"),
        "{banner}"
    );
    assert!(
        !banner.contains("sk-master-cli-test"),
        "the master key is never printed: {banner}"
    );
}
