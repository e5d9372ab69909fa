//! Every error reaches the client in the shape of the API it called, with the
//! right status, over real sockets.
#![allow(clippy::unwrap_used)]

mod common;

use common::{frames, KEY};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use switchyard_mock::Fault;

async fn openai_raw(gw: &common::Gateway, body: &'static str) -> (u16, Value) {
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("x-request-id").is_some());
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn anthropic_raw(gw: &common::Gateway, body: &'static str) -> (u16, Value) {
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.base))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("x-request-id").is_some());
    (r.status().as_u16(), r.json().await.unwrap())
}

fn assert_openai_error(v: &Value, ty: &str) {
    let e = &v["error"];
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert_eq!(e["type"], ty, "{v}");
    assert!(
        e.get("param").is_some() && e.get("code").is_some(),
        "OpenAI error objects carry param and code: {v}"
    );
}

fn assert_anthropic_error(v: &Value, ty: &str) {
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], ty, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

#[tokio::test]
async fn malformed_and_invalid_requests_are_400_naming_the_field() {
    let gw = common::start().await;
    let (s, v) = openai_raw(&gw, "{\"model\": \"gpt\", ").await;
    assert_eq!(s, 400);
    assert_openai_error(&v, "invalid_request_error");
    let (s, v) = openai_raw(&gw, r#"{"messages": []}"#).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["param"], "model");
    // Translated path: full validation names the nested field.
    let (s, v) = openai_raw(
        &gw,
        r#"{"model": "claude", "messages": [{"role": "user", "content": 42}]}"#,
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["param"]
            .as_str()
            .unwrap_or_default()
            .contains("messages"),
        "{v}"
    );
    let (s, v) = openai_raw(&gw, r#"{"model": "gem"}"#).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("messages"),
        "{v}"
    );

    let (s, v) = anthropic_raw(&gw, "not json").await;
    assert_eq!(s, 400);
    assert_anthropic_error(&v, "invalid_request_error");
    let (s, v) = anthropic_raw(
        &gw,
        r#"{"model": "gpt", "messages": [{"role": "user", "content": "x"}]}"#,
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_tokens"),
        "{v}"
    );
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found() {
    let gw = common::start().await;
    let (s, v) = openai_raw(
        &gw,
        r#"{"model": "nope", "messages": [{"role": "user", "content": "x"}]}"#,
    )
    .await;
    assert_eq!(s, 404);
    assert_openai_error(&v, "invalid_request_error");
    assert_eq!(v["error"]["code"], "model_not_found");
    let (s, v) = anthropic_raw(
        &gw,
        r#"{"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}"#,
    )
    .await;
    assert_eq!(s, 404);
    assert_anthropic_error(&v, "not_found_error");
}

#[tokio::test]
async fn gateway_key_required_in_every_accepted_header() {
    let gw = common::start().await;
    let body = json!({"model": "gpt", "messages": [{"role": "user", "content": "x"}]});
    let url = format!("{}/v1/chat/completions", gw.base);
    let r = gw.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // As OpenAI answers a missing or wrong key: 401 `invalid_request_error`.
    let v: Value = r.json().await.unwrap();
    assert_openai_error(&v, "invalid_request_error");
    assert_eq!(v["error"]["code"], "invalid_api_key", "{v}");
    let r = gw
        .http
        .post(&url)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    for (h, v) in [
        ("authorization", format!("Bearer {KEY}")),
        ("x-api-key", KEY.to_owned()),
        ("api-key", KEY.to_owned()),
    ] {
        let r = gw
            .http
            .post(&url)
            .header(h, v)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{h}");
    }
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.base))
        .header("x-api-key", "wrong")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_anthropic_error(&r.json().await.unwrap(), "authentication_error");
    // Current Anthropic SDKs may send the key as a bearer token.
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.base))
        .bearer_auth(KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn body_limit_is_413_in_the_callers_format() {
    let gw = common::start().await;
    let big = "x".repeat(2 * 1024 * 1024);
    let r = gw
        .openai(json!({"model": "gpt", "messages": [{"role": "user", "content": big}]}))
        .await;
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("limit"));
}

#[tokio::test]
async fn upstream_429_passes_retry_after() {
    let gw = common::start().await;
    for alias in ["gpt", "claude", "gem"] {
        gw.mock(alias).push_fault(Fault::RateLimited {
            retry_after_secs: 7,
        });
        let r = gw
            .openai(json!({"model": alias, "messages": [{"role": "user", "content": "x"}]}))
            .await;
        assert_eq!(r.status(), 429, "{alias}");
        assert_eq!(r.headers()["retry-after"], "7", "{alias}");
        let v: Value = r.json().await.unwrap();
        // OpenAI itself says `type: requests|tokens`, `code: rate_limit_exceeded`.
        let ty = v["error"]["type"].as_str().unwrap();
        assert!(
            ["rate_limit_error", "requests", "tokens"].contains(&ty),
            "{v}"
        );
        gw.mock(alias).push_fault(Fault::RateLimited {
            retry_after_secs: 3,
        });
        let r = gw.anthropic(json!({"model": alias, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})).await;
        assert_eq!(r.status(), 429, "{alias}");
        assert_eq!(r.headers()["retry-after"], "3");
        assert_anthropic_error(&r.json().await.unwrap(), "rate_limit_error");
    }
}

#[tokio::test]
async fn upstream_5xx_is_502_naming_the_provider() {
    let gw = common::start().await;
    for alias in ["gpt", "claude", "gem"] {
        for fault in [
            Fault::Status(500),
            Fault::Status(503),
            Fault::Overloaded,
            Fault::MalformedBody,
        ] {
            gw.mock(alias).push_fault(fault.clone());
            let r = gw
                .openai(json!({"model": alias, "messages": [{"role": "user", "content": "x"}]}))
                .await;
            assert_eq!(r.status(), 502, "{alias} {fault:?}");
            let v: Value = r.json().await.unwrap();
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains("upstream provider"), "{msg}");
        }
        gw.mock(alias).push_fault(Fault::Status(500));
        let r = gw.anthropic(json!({"model": alias, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]})).await;
        assert_eq!(r.status(), 502);
        assert_eq!(r.headers()["x-should-retry"], "true");
        assert_anthropic_error(&r.json().await.unwrap(), "api_error");
    }
}

#[tokio::test]
async fn upstream_400_and_auth_failures() {
    let gw = common::start().await;
    gw.openai.push_fault(Fault::Status(400));
    let r = gw
        .openai(json!({"model": "gpt", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(r.status(), 400);
    // The gateway's own provider key refused: not the client's fault.
    gw.anthropic.push_fault(Fault::Status(401));
    let r = gw
        .openai(json!({"model": "claude", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("credentials"),
        "{v}"
    );
    // A model the upstream does not know → 404 with its message.
    let r = gw
        .openai(
            json!({"model": "oai/missing-model", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn hung_upstream_is_504_within_the_bound() {
    let gw = common::start_with("timeouts: { first_byte: 400ms, idle: 400ms }").await;
    for alias in ["gpt", "claude", "gem"] {
        gw.mock(alias).push_fault(Fault::Hang);
        let t = Instant::now();
        let r = gw
            .openai(json!({"model": alias, "messages": [{"role": "user", "content": "x"}]}))
            .await;
        assert_eq!(r.status(), 504, "{alias}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let v: Value = r.json().await.unwrap();
        assert_openai_error(&v, "server_error");
        assert_eq!(v["error"]["code"], "upstream_timeout");
    }
    // A stream whose chunks stop coming ends with an error event, not a hang.
    gw.openai
        .push_fault(Fault::ChunkDelay(Duration::from_secs(5)));
    let t = Instant::now();
    let r = gw.openai(json!({"model": "gpt", "stream": true, "messages": [{"role": "user", "content": "x y z"}]})).await;
    assert_eq!(r.status(), 200);
    let f = frames(r).await;
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let last: Value = serde_json::from_str(&f.last().unwrap().data).unwrap();
    assert!(last.get("error").is_some(), "{last}");
}

#[tokio::test]
async fn mid_stream_failures_end_with_a_well_formed_error_event() {
    let gw = common::start().await;
    for alias in ["gpt", "claude", "gem"] {
        gw.mock(alias)
            .push_fault(Fault::DropMidStream { after_chunks: 2 });
        let r = gw.openai(json!({"model": alias, "stream": true, "messages": [{"role": "user", "content": "a b c d e f g"}]})).await;
        assert_eq!(r.status(), 200);
        let f = frames(r).await;
        let last: Value = serde_json::from_str(&f.last().unwrap().data)
            .unwrap_or_else(|e| panic!("{alias}: {:?} {e}", f.last()));
        assert!(
            last["error"]["message"].as_str().is_some(),
            "{alias}: {last}"
        );
        assert!(
            f.iter().all(|x| x.data != "[DONE]"),
            "{alias}: a failed stream must not look complete"
        );

        gw.mock(alias)
            .push_fault(Fault::DropMidStream { after_chunks: 2 });
        let r = gw.anthropic(json!({"model": alias, "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "a b c d e f g"}]})).await;
        let f = frames(r).await;
        let last = f.last().unwrap();
        assert_eq!(last.event.as_deref(), Some("error"), "{alias}: {f:?}");
        let v: Value = serde_json::from_str(&last.data).unwrap();
        assert_eq!(v["type"], "error");

        // A malformed event after the first one: never relayed as data.
        gw.mock(alias).push_fault(Fault::MalformedBody);
        let f = frames(gw.openai(json!({"model": alias, "stream": true, "messages": [{"role": "user", "content": "a b c"}]})).await).await;
        let last: Value = serde_json::from_str(&f.last().unwrap().data)
            .unwrap_or_else(|e| panic!("{alias}: {f:?} {e}"));
        assert!(last["error"]["message"].is_string(), "{alias}: {last}");
        assert!(
            f.iter()
                .all(|x| x.data == "[DONE]" || serde_json::from_str::<Value>(&x.data).is_ok()),
            "{alias}: {f:?}"
        );

        // The provider's own mid-stream error event is carried over.
        gw.mock(alias)
            .push_fault(Fault::StreamError { after_chunks: 2 });
        let r = gw.anthropic(json!({"model": alias, "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "a b c d e f g"}]})).await;
        let f = frames(r).await;
        assert_eq!(
            f.last().unwrap().event.as_deref(),
            Some("error"),
            "{alias}: {f:?}"
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_health() {
    let gw = common::start().await;
    let r = gw
        .http
        .get(format!("{}/v1/nothing", gw.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = gw
        .http
        .get(format!("{}/health", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = gw
        .http
        .get(format!("{}/ready", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = gw
        .http
        .get(format!("{}/health", gw.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    // The gateway's own id keys usage rows; the caller's is echoed apart.
    assert_ne!(r.headers()["x-request-id"], "abc-123");
    assert_eq!(r.headers()["x-client-request-id"], "abc-123");
}

/// The hot routes are served by the front door (`front.rs`) without the
/// router, and by the router for programs that serve `http::app` directly:
/// both answer alike, and other methods on those paths get a 405.
#[tokio::test]
async fn hot_routes_answer_alike_through_the_front_door_and_the_router() {
    use tower::ServiceExt;
    let gw = common::start().await;
    let body = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]});
    let front = gw.openai(body.clone()).await;
    assert_eq!(front.status(), 200);
    assert!(front.headers().contains_key("x-request-id"));
    let front: Value = front.json().await.unwrap();

    let call = |key: Option<&str>| {
        let mut b = axum::http::Request::post("/v1/chat/completions")
            .header("content-type", "application/json");
        if let Some(k) = key {
            b = b.header("authorization", format!("Bearer {k}"));
        }
        let req = b.body(axum::body::Body::from(body.to_string())).unwrap();
        switchyard_server::http::app(gw.state.clone()).oneshot(req)
    };
    let routed = call(Some(KEY)).await.unwrap();
    assert_eq!(routed.status(), 200);
    assert!(routed.headers().contains_key("x-request-id"));
    let bytes = axum::body::to_bytes(routed.into_body(), 1 << 20)
        .await
        .unwrap();
    let routed: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(routed["object"], "chat.completion");
    assert_eq!(
        routed["choices"][0]["message"],
        front["choices"][0]["message"]
    );

    // Without a key: the same 401 in OpenAI's error shape on both paths.
    let unauth = call(None).await.unwrap();
    assert_eq!(unauth.status(), 401);
    let bytes = axum::body::to_bytes(unauth.into_body(), 1 << 20)
        .await
        .unwrap();
    let routed: Value = serde_json::from_slice(&bytes).unwrap();
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.base))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let front: Value = r.json().await.unwrap();
    assert_eq!(routed, front);
    assert_eq!(front["error"]["code"], "invalid_api_key", "{front}");

    // Another method on a hot path is not the hot route.
    let r = gw
        .http
        .get(format!("{}/v1/chat/completions", gw.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

/// A body that cannot be read (here: a malformed chunk size) is a 400 in
/// the caller's format, not a 413 "too large".
#[tokio::test]
async fn unreadable_body_is_400_not_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = common::start().await;
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("could not read the request body"),
        "{v}"
    );
}

/// Connections one I/O worker accepts are spread over the workers, least
/// busy first, and a handed-over connection is served like any other. Lane
/// 1 listens where nobody connects, so it only gets connections that lane 0
/// hands over; without the hand-over all eight would stay on lane 0.
#[tokio::test]
async fn connections_are_spread_over_the_workers() {
    use switchyard_server::front;
    let gw = common::start().await;
    let lanes = front::Spread::lanes(2);
    let spread = lanes[0].spread();
    let busy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idle = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", busy.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for (lane, listener) in lanes.into_iter().zip([busy, idle]) {
        let st = gw.state.clone();
        let mut stopped = stopped.clone();
        let app = switchyard_server::http::app(st.clone());
        workers.push(tokio::spawn(front::serve_spread(
            listener,
            st,
            app,
            Some(lane),
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        )));
    }
    let body = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]});
    // Eight clients, one keep-alive connection each.
    let clients: Vec<reqwest::Client> = (0..8).map(|_| reqwest::Client::new()).collect();
    for round in 0..2 {
        for c in &clients {
            let r = c
                .post(format!("{base}/v1/chat/completions"))
                .bearer_auth(KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "round {round}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["object"], "chat.completion");
        }
        assert_eq!(spread.active(), vec![4, 4], "round {round}");
    }
    // Closed connections are no longer counted.
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(5);
    while spread.active() != vec![0, 0] {
        assert!(Instant::now() < deadline, "{:?}", spread.active());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(true);
    for w in workers {
        w.await.unwrap().unwrap();
    }
}
