//! Usage accounting: every request produces one record with the provider's
//! token counts — streamed or not, passed through or translated, completed,
//! failed or abandoned by the client.
#![allow(clippy::unwrap_used)]

mod common;

use common::frames;
use serde_json::{json, Value};
use std::time::Duration;
use switchyard_mock::Fault;

#[tokio::test]
async fn streamed_usage_equals_non_streamed_usage_on_every_path() {
    let gw = common::start().await;
    let mut expected = Vec::new();
    for alias in ["gpt", "claude", "gem"] {
        let msgs = json!([{"role": "user", "content": "count my tokens please"}]);
        let v: Value = gw
            .openai(json!({"model": alias, "messages": msgs}))
            .await
            .json()
            .await
            .unwrap();
        let (pi, co) = (
            v["usage"]["prompt_tokens"].as_u64().unwrap(),
            v["usage"]["completion_tokens"].as_u64().unwrap(),
        );
        // OpenAI client, stream, usage NOT requested: the gateway still accounts.
        frames(
            gw.openai(json!({"model": alias, "messages": msgs, "stream": true}))
                .await,
        )
        .await;
        // Anthropic client, stream.
        frames(
            gw.anthropic(
                json!({"model": alias, "max_tokens": 100, "messages": msgs, "stream": true}),
            )
            .await,
        )
        .await;
        expected.push((alias, pi, co));
    }
    let recs = gw.usage_records(9).await;
    assert_eq!(recs.len(), 9);
    for (i, (alias, pi, co)) in expected.iter().enumerate() {
        for r in &recs[i * 3..i * 3 + 3] {
            assert_eq!(r.alias, *alias);
            assert_eq!(r.status, 200, "{r:?}");
            let u = r.usage.unwrap_or_else(|| panic!("no usage for {r:?}"));
            assert_eq!((u.input_tokens, u.output_tokens), (*pi, *co), "{r:?}");
        }
        assert!(recs[i * 3 + 1].stream && recs[i * 3 + 1].ttft.is_some());
    }
    assert_eq!(
        gw.state
            .usage
            .totals()
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn failures_and_disconnects_are_recorded() {
    let gw = common::start().await;
    gw.openai.push_fault(Fault::Status(500));
    gw.openai(json!({"model": "gpt", "messages": [{"role": "user", "content": "x"}]}))
        .await;
    gw.anthropic
        .push_fault(Fault::DropMidStream { after_chunks: 2 });
    frames(gw.openai(json!({"model": "claude", "stream": true, "messages": [{"role": "user", "content": "a b c d"}]})).await).await;
    // The client walks away mid-stream.
    gw.gemini
        .push_fault(Fault::ChunkDelay(Duration::from_millis(200)));
    let mut resp = gw.openai(json!({"model": "gem", "stream": true, "messages": [{"role": "user", "content": "a b c d e f"}]})).await;
    let _first = resp.chunk().await.unwrap();
    drop(resp);
    let recs = gw.usage_records(3).await;
    assert_eq!(recs[0].status, 502);
    assert!(recs[0].error.as_deref().unwrap().contains("500"));
    assert_eq!(recs[1].status, 502);
    assert!(
        recs[1].error.as_deref().unwrap().contains("mid-stream")
            || recs[1].error.as_deref().unwrap().contains("early"),
        "{:?}",
        recs[1]
    );
    assert_eq!(recs[2].status, 499, "{:?}", recs[2]);
    assert_eq!(recs[2].error.as_deref(), Some("client disconnected"));
}
