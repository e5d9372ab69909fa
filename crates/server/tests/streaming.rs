//! How the stream relay writes to the client, against a raw-socket upstream
//! whose timing the test controls: events that arrive together leave
//! together (one write, not one per event), and an event is never held back
//! waiting for the next one.
#![allow(clippy::unwrap_used)]

mod common;

use common::{rig, KEY};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EVENTS: usize = 20;

fn event(i: usize) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
    )
}

fn last_events() -> String {
    concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":20,\"total_tokens\":23}}\n\n",
        "data: [DONE]\n\n"
    )
    .to_owned()
}

/// One HTTP/1.1 chunk of a chunked body.
fn chunk(s: &str) -> String {
    format!("{:X}\r\n{s}\r\n", s.len())
}

/// An OpenAI-compatible upstream on a raw socket: answers every request with
/// an SSE stream whose parts are written with the given pauses between them.
async fn upstream(parts: Vec<(Duration, String)>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            s.set_nodelay(true).unwrap();
            let parts = parts.clone();
            tokio::spawn(async move {
                // Read the request head and its JSON body (ends with `}`).
                let mut req = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    if req.ends_with(b"}") {
                        break;
                    }
                }
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                let _ = s.write_all(head.as_bytes()).await;
                for (pause, text) in parts {
                    tokio::time::sleep(pause).await;
                    let _ = s.write_all(text.as_bytes()).await;
                }
                let _ = s.write_all(b"0\r\n\r\n").await;
                let _ = s.flush().await;
            });
        }
    });
    port
}

fn config(port: u16) -> String {
    format!(
        "server: {{ api_keys: [\"${{GW_KEY}}\"] }}\nproviders:\n  raw: {{ kind: openai, base_url: \"http://127.0.0.1:{port}/v1\", api_key: \"${{K}}\" }}\nmodels:\n  m:\n    deployments: [{{ provider: raw, model: gpt-4o }}]\n"
    )
}

/// Send a streaming request over a raw socket and return the response
/// head and the chunks of its chunked body, as the gateway framed them.
async fn raw_stream(base: &str) -> (String, Vec<String>) {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, mut rest) = raw.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let mut chunks = Vec::new();
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size, 16).unwrap();
        if n == 0 {
            break;
        }
        chunks.push(after[..n].to_owned());
        rest = &after[n + 2..];
    }
    (head.to_owned(), chunks)
}

/// Twenty events that reach the gateway in one read are relayed in one or
/// two writes (each HTTP chunk the client receives is one gateway write),
/// not twenty, and nothing is lost or reordered.
#[tokio::test]
async fn a_burst_of_events_leaves_in_one_write() {
    let mut burst = String::new();
    for i in 0..EVENTS {
        burst.push_str(&chunk(&event(i)));
    }
    burst.push_str(&chunk(&last_events()));
    let port = upstream(vec![(Duration::ZERO, burst)]).await;
    let gw = rig(&[], &config(port)).await;
    let (head, chunks) = raw_stream(&gw.base).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body: String = chunks.concat();
    let want: String = (0..EVENTS).map(event).collect::<String>()
        + &last_events().replace(
            // The usage chunk was not asked for by this client.
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":20,\"total_tokens\":23}}\n\n",
            "",
        );
    assert_eq!(body, want);
    assert!(
        chunks.len() <= 3,
        "{} writes for one burst of {} events: {:?}",
        chunks.len(),
        EVENTS + 2,
        chunks.iter().map(String::len).collect::<Vec<_>>()
    );
}

/// Events that arrive apart are relayed apart: the first is at the client
/// long before the upstream sends the second.
#[tokio::test]
async fn an_event_is_never_held_for_the_next() {
    let gap = Duration::from_millis(300);
    let parts = vec![
        (Duration::ZERO, chunk(&event(0))),
        (gap, chunk(&event(1))),
        (gap, chunk(&last_events())),
    ];
    let port = upstream(parts).await;
    let gw = rig(&[], &config(port)).await;
    let resp = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let started = Instant::now();
    let mut resp = resp;
    let mut seen = String::new();
    let markers = ["tok0 ", "tok1 ", "[DONE]"];
    let mut arrivals = Vec::new();
    while let Some(b) = resp.chunk().await.unwrap() {
        seen.push_str(std::str::from_utf8(&b).unwrap());
        while arrivals.len() < markers.len() && seen.contains(markers[arrivals.len()]) {
            arrivals.push(started.elapsed());
        }
    }
    assert!(seen.ends_with("data: [DONE]\n\n"), "{seen}");
    assert_eq!(arrivals.len(), markers.len(), "{seen}");
    // Had the relay held an event until the next came, they would arrive together.
    for w in arrivals.windows(2) {
        assert!(
            w[1] - w[0] >= gap * 2 / 3,
            "arrivals {arrivals:?} for parts sent {gap:?} apart: an event was held back"
        );
    }
}

/// An upstream event that is not JSON ends the stream with an error event
/// after the good ones (relayed as they were, escapes and all); the bad
/// bytes never reach the client.
#[tokio::test]
async fn an_event_that_is_not_json_ends_the_stream_with_an_error() {
    let tricky = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a \\\"quote\\\", a \\\\ and \\u00e9 \\n\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
    let broken =
        "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":{\"content\":\"cut here\"}}]\n\n";
    let mut parts = vec![(Duration::ZERO, chunk(&event(0)))];
    parts.push((Duration::from_millis(20), chunk(tricky)));
    parts.push((Duration::from_millis(20), chunk(broken)));
    parts.push((Duration::from_millis(20), chunk(&last_events())));
    let port = upstream(parts).await;
    let gw = rig(&[], &config(port)).await;
    let (head, chunks) = raw_stream(&gw.base).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body: String = chunks.concat();
    assert!(body.starts_with(&(event(0) + tricky)), "{body}");
    assert!(!body.contains("cut here"), "{body}");
    assert!(!body.contains("[DONE]"), "{body}");
    let last = body.trim_end().rsplit("\n\n").next().unwrap();
    let err: serde_json::Value =
        serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("not valid JSON"), "{err}");
}
