use super::*;

fn all() -> Detector {
    Detector::new(&PiiConfig::mask_all()).unwrap()
}

fn mask(text: &str) -> (String, String) {
    let mut f = Findings::default();
    let out = all()
        .mask_text(text, &mut f)
        .unwrap_or_else(|| text.to_owned());
    (out, f.summary())
}

#[test]
fn masks_each_built_in_entity() {
    let cases = [
        (
            "mail alice.smith+tag@example.co.uk now",
            "mail [EMAIL] now",
            "email=1",
        ),
        (
            "card 4111 1111 1111 1111 exp",
            "card [CREDIT_CARD] exp",
            "credit_card=1",
        ),
        (
            "card 5555555555554444.",
            "card [CREDIT_CARD].",
            "credit_card=1",
        ),
        (
            "amex 3782-822463-10005",
            "amex [CREDIT_CARD]",
            "credit_card=1",
        ),
        ("ssn 078-05-1120", "ssn [SSN]", "ssn=1"),
        ("call +1 415 555 2671", "call [PHONE]", "phone=1"),
        (
            "call (415) 555-2671 or 415.555.2671",
            "call [PHONE] or [PHONE]",
            "phone=2",
        ),
        ("手机13812345678请回电", "手机[PHONE]请回电", "phone=1"),
        ("tel +86 138 1234 5678", "tel [PHONE]", "phone=1"),
        ("uk +44 20 7946 0958", "uk [PHONE]", "phone=1"),
        ("身份证11010519491231002X", "身份证[CN_ID]", "cn_id=1"),
        (
            "iban GB82 WEST 1234 5698 7654 32 ok",
            "iban [IBAN] ok",
            "iban=1",
        ),
        ("iban DE89370400440532013000", "iban [IBAN]", "iban=1"),
        (
            "host 192.168.1.20:8080",
            "host [IP_ADDRESS]:8080",
            "ip_address=1",
        ),
        (
            "key sk-proj-abcdefghijklmnopqrstuvwxyz012345",
            "key [SECRET]",
            "secret=1",
        ),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [SECRET]", "secret=1"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY----- done",
            "[SECRET] done",
            "secret=1",
        ),
    ];
    for (input, want, summary) in cases {
        assert_eq!(
            mask(input),
            (want.to_owned(), summary.to_owned()),
            "{input}"
        );
    }
}

#[test]
fn leaves_look_alikes_alone() {
    for text in [
        "pi is 3.14159265358979",
        "card 4111 1111 1111 1112 fails Luhn",
        "ts 1700000000000 ms",
        "order 12345, total 1,234,567.89",
        "date 2024-01-15 and 2024-01-15T10:00:00Z",
        "version 1.2.3 and 999.1.1.1 and 1.02.3.4",
        "ssn-like 000-12-3456 and 666-12-3456 and 900-12-3456",
        "id 11010519491231002Y and 11010519491231003X",
        "iban GB00 WEST 1234 5698 7654 32",
        "word13812345678 and 138123456789",
        "max_tokens 1000000, seed 424242",
        "no at sign: alice(at)example.com",
    ] {
        assert_eq!(mask(text), (text.to_owned(), String::new()), "{text}");
    }
}

#[test]
fn custom_rules_come_first_and_are_checked() {
    let cfg = PiiConfig {
        entities: vec![("phone".into(), Action::Mask)],
        custom: vec![CustomRule {
            name: "employee-id".into(),
            pattern: r"EMP-[0-9]{6}".into(),
            action: Action::Mask,
        }],
    };
    let d = Detector::new(&cfg).unwrap();
    let mut f = Findings::default();
    assert_eq!(
        d.mask_text("EMP-123456 at 415-555-2671", &mut f).as_deref(),
        Some("[EMPLOYEE_ID] at [PHONE]")
    );
    assert_eq!(f.summary(), "employee-id=1, phone=1");
    assert_eq!(d.rule_names().collect::<Vec<_>>(), ["employee-id", "phone"]);

    let bad = |custom: Vec<CustomRule>, entities: Vec<(String, Action)>| {
        Detector::new(&PiiConfig { entities, custom })
            .unwrap_err()
            .0
    };
    let rule = |name: &str, pattern: &str| CustomRule {
        name: name.into(),
        pattern: pattern.into(),
        action: Action::Mask,
    };
    assert!(bad(vec![rule("x", "(")], vec![]).contains("invalid pattern"));
    assert!(bad(vec![rule("x", "a*")], vec![]).contains("matches empty text"));
    assert!(bad(vec![rule("email", "x")], vec![]).contains("defined twice"));
    assert!(bad(vec![rule("a b", "x")], vec![]).contains("letters, digits"));
    assert!(bad(vec![], vec![("passport".into(), Action::Mask)])
        .contains("unknown PII entity `passport`"));
}

#[test]
fn openai_body_masks_text_and_keeps_everything_else() {
    let body = br#"{"model":"gpt-4o","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"I am bob@corp.example, call 415-555-2671"},{"type":"image_url","image_url":{"url":"data:image/png;base64,4111111111111111"}}]},{"role":"assistant","content":null,"tool_calls":[{"id":"call_4111111111111111","type":"function","function":{"name":"lookup","arguments":"{\"email\":\"bob@corp.example\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"found 192.168.0.7"}],"user":"bob@corp.example","temperature":0.5}"#;
    let Outcome::Masked {
        body: out,
        findings,
    } = all().apply(BodyKind::OpenAiChat, body)
    else {
        panic!("expected masking");
    };
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["messages"][1]["content"][0]["text"],
        "I am [EMAIL], call [PHONE]"
    );
    assert_eq!(
        v["messages"][1]["content"][1]["image_url"]["url"],
        "data:image/png;base64,4111111111111111"
    );
    assert_eq!(
        v["messages"][2]["tool_calls"][0]["id"],
        "call_4111111111111111"
    );
    assert_eq!(
        v["messages"][2]["tool_calls"][0]["function"]["arguments"],
        r#"{"email":"[EMAIL]"}"#
    );
    assert_eq!(v["messages"][3]["content"], "found [IP_ADDRESS]");
    // Outside `messages` too: every string value is scanned.
    assert_eq!(v["user"], "[EMAIL]");
    assert_eq!(v["temperature"], 0.5);
    // Key order preserved.
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["model", "messages", "user", "temperature"]);
    assert_eq!(findings.summary(), "email=3, phone=1, ip_address=1");
}

#[test]
fn anthropic_body_masks_system_and_tool_results_not_thinking() {
    let body = br#"{"model":"claude","max_tokens":10,"system":[{"type":"text","text":"user ssn 078-05-1120"}],"messages":[{"role":"user","content":"hi, I'm 13812345678"},{"role":"assistant","content":[{"type":"thinking","thinking":"their number is 13812345678","signature":"sig"},{"type":"tool_use","id":"toolu_1","name":"crm","input":{"phone":"13812345678","n":3}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"owner a@b.io"}]}]}]}"#;
    let Outcome::Masked {
        body: out,
        findings,
    } = all().apply(BodyKind::AnthropicMessages, body)
    else {
        panic!("expected masking");
    };
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["system"][0]["text"], "user ssn [SSN]");
    assert_eq!(v["messages"][0]["content"], "hi, I'm [PHONE]");
    assert_eq!(
        v["messages"][1]["content"][0]["thinking"],
        "their number is 13812345678"
    );
    assert_eq!(
        v["messages"][1]["content"][1]["input"],
        serde_json::json!({"phone":"[PHONE]","n":3})
    );
    assert_eq!(
        v["messages"][2]["content"][0]["content"][0]["text"],
        "owner [EMAIL]"
    );
    assert_eq!(findings.summary(), "ssn=1, phone=2, email=1");
}

#[test]
fn embeddings_inputs_are_masked() {
    let out = all().apply(
        BodyKind::Embeddings,
        br#"{"model":"e","input":["x a@b.io","y"]}"#,
    );
    let Outcome::Masked { body, .. } = out else {
        panic!("expected masking")
    };
    assert_eq!(body, br#"{"model":"e","input":["x [EMAIL]","y"]}"#);
    // Token arrays are not text.
    assert!(matches!(
        all().apply(
            BodyKind::Embeddings,
            br#"{"model":"e","input":[4111111111111111]}"#
        ),
        Outcome::Clean
    ));
}

#[test]
fn clean_bodies_are_not_rewritten() {
    let d = all();
    for body in [
        &br#"{"model":"m","messages":[{"role":"user","content":"hello there"}],"max_tokens":1000000}"#[..],
        // A candidate in an identifier: parsed, nothing changed.
        br#"{"model":"m","messages":[{"role":"tool","tool_call_id":"a@b.io","content":"hi"}]}"#,
        // Nothing any rule could match: not parsed at all.
        b"",
    ] {
        assert!(matches!(d.apply(BodyKind::OpenAiChat, body), Outcome::Clean));
    }
}

/// A body the detector must parse and cannot is refused, never passed
/// as clean: what was not read was not checked (issue 18 §3).
#[test]
fn unreadable_bodies_are_never_clean() {
    let d = all();
    let deep = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"a@b.io"}}],"x":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    for body in [
        b"{not json a@b.io".to_vec(),
        br#"{"model":"m","messages":[{"role":"user","content":"a@b.io \ud800"}]}"#.to_vec(),
        br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"x":"\udc00"}"#.to_vec(),
        b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a@b.io \xff\"}]}"
            .to_vec(),
        deep.into_bytes(),
    ] {
        let out = d.apply(BodyKind::OpenAiChat, &body);
        assert!(
            matches!(out, Outcome::Unreadable { ref reason } if !reason.contains("a@b")),
            "{out:?}"
        );
    }
}

#[test]
fn unicode_escapes_cannot_hide_a_match() {
    // `@` written as \u0040 is invisible to the raw scan.
    let body =
        br#"{"model":"m","messages":[{"role":"user","content":"bob\u0040corp.example \u00e9"}]}"#;
    let Outcome::Masked { body, .. } = all().apply(BodyKind::OpenAiChat, body) else {
        panic!("expected masking");
    };
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["messages"][0]["content"], "[EMAIL] é");
}

#[test]
fn blocking_rules_refuse_and_report_names_only() {
    let cfg = PiiConfig {
        entities: vec![
            ("email".into(), Action::Mask),
            ("secret".into(), Action::Block),
        ],
        custom: vec![],
    };
    let d = Detector::new(&cfg).unwrap();
    let body =
        br#"{"messages":[{"role":"user","content":"a@b.io key sk-abcdefghijklmnopqrstuvwxyz"}]}"#;
    let Outcome::Blocked { findings } = d.apply(BodyKind::OpenAiChat, body) else {
        panic!("expected a block");
    };
    assert_eq!(findings.blocking().collect::<Vec<_>>(), [("secret", 1)]);
    assert_eq!(findings.summary(), "email=1, secret=1");
    // Only masking rules matched: masked, not blocked.
    let body = br#"{"messages":[{"role":"user","content":"a@b.io"}]}"#;
    assert!(matches!(
        d.apply(BodyKind::OpenAiChat, body),
        Outcome::Masked { .. }
    ));
}

#[test]
fn arbitrary_bytes_never_panic() {
    let d = all();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for len in 0..300 {
        let mut b = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b.push(b"{}[]\":,0123456789@.-+ abcXsk\\u"[(seed % 30) as usize]);
        }
        let _ = d.apply(BodyKind::AnthropicMessages, &b);
        if let Ok(s) = std::str::from_utf8(&b) {
            let _ = d.mask_text(s, &mut Findings::default());
        }
    }
}

/// A custom pattern may match a character JSON writes as an escape (a tab,
/// a quote, a slash): the raw scan cannot see it, so the body is parsed.
#[test]
fn escapes_cannot_hide_a_custom_match() {
    let cfg = PiiConfig {
        entities: vec![],
        custom: vec![CustomRule {
            name: "ticket".into(),
            pattern: r#"TK[\s/"][0-9]{4}"#.into(),
            action: Action::Block,
        }],
    };
    let d = Detector::new(&cfg).unwrap();
    for body in [
        &br#"{"model":"m","messages":[{"role":"user","content":"see TK\t1234"}]}"#[..],
        br#"{"model":"m","messages":[{"role":"user","content":"see TK\/1234"}]}"#,
        br#"{"model":"m","messages":[{"role":"user","content":"see TK\"1234"}]}"#,
        br#"{"model":"m","messages":[{"role":"user","content":"see TK 1234"}]}"#,
    ] {
        let out = d.apply(BodyKind::OpenAiChat, body);
        assert!(matches!(out, Outcome::Blocked { .. }), "{out:?}");
    }
}

/// A member named twice: serde keeps the last, other parsers the first, so
/// the scan and the provider could read different text. Refused, in any
/// object, on every body kind, naming the member and never the text.
#[test]
fn duplicate_members_are_unreadable() {
    let d = all();
    let key = "sk-proj-A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0";
    for (kind, body, member) in [
        (
            BodyKind::OpenAiChat,
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"{key}","content":"hi"}}]}}"#
            ),
            "content",
        ),
        (
            BodyKind::OpenAiChat,
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":"{key}"}}],"messages":[]}}"#
            ),
            "messages",
        ),
        (
            BodyKind::AnthropicMessages,
            format!(r#"{{"model":"m","system":"{key}","system":"hi","messages":[]}}"#),
            "system",
        ),
        (
            BodyKind::AnthropicMessages,
            format!(
                r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"text","text":"{key}","text":"hi"}}]}}]}}"#
            ),
            "text",
        ),
        (
            BodyKind::Embeddings,
            format!(r#"{{"model":"m","input":"{key}","input":"hi"}}"#),
            "input",
        ),
        (
            BodyKind::Embeddings,
            format!(r#"{{"model":"m","input":"{key}","x":{{"a":1,"a":2}}}}"#),
            "a",
        ),
    ] {
        let out = d.apply(kind, body.as_bytes());
        let want = format!("duplicate member `{member}`");
        assert!(
            matches!(out, Outcome::Unreadable { ref reason } if reason.contains(&want) && !reason.contains("sk-")),
            "{body}: {out:?}"
        );
    }
    // A duplicate whose name is not a plain word is not echoed.
    let body = br#"{"input":"a@b.io","x":{"a@b.io x":1,"a@b.io x":2}}"#;
    assert!(matches!(
        d.apply(BodyKind::Embeddings, body),
        Outcome::Unreadable { ref reason } if reason.contains("duplicate member") && !reason.contains("a@b")
    ));
    // Same name in different objects is fine; and a body no rule can match
    // is not parsed at all, duplicate or not (its raw bytes, every copy
    // included, hold nothing to find).
    let body =
        br#"{"messages":[{"role":"user","content":"a@b.io"},{"role":"user","content":"x"}]}"#;
    assert!(matches!(
        d.apply(BodyKind::OpenAiChat, body),
        Outcome::Masked { .. }
    ));
    let body = br#"{"messages":[{"role":"user","content":"hi","content":"there"}]}"#;
    assert!(matches!(
        d.apply(BodyKind::OpenAiChat, body),
        Outcome::Clean
    ));
}

/// Issue 18 §3: guardrails see every byte they let through. Every string
/// value is scanned, not only message text.
#[test]
fn every_string_value_is_scanned() {
    let d = all();
    let chat = br#"{"model":"m","messages":[{"role":"user","name":"a@b.io","content":"hi"}],"tools":[{"type":"function","function":{"name":"lookup","description":"mail a@b.io","parameters":{"type":"object","properties":{"id":{"type":"string","description":"like a@b.io","default":"a@b.io","enum":["a@b.io"]}}}}}],"prediction":{"type":"content","content":"a@b.io"},"stop":["a@b.io"],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"description":"a@b.io"}}},"user":"a@b.io","metadata":{"k":"a@b.io"}}"#;
    let Outcome::Masked { body, findings } = d.apply(BodyKind::OpenAiChat, chat) else {
        panic!("expected masking");
    };
    let out = String::from_utf8(body).unwrap();
    assert!(!out.contains("a@b.io"), "{out}");
    assert_eq!(findings.summary(), "email=10");
    let v: Value = serde_json::from_str(&out).unwrap();
    // Tool names round-trip with the tool's calls.
    assert_eq!(v["tools"][0]["function"]["name"], "lookup");
    assert_eq!(v["messages"][0]["name"], "[EMAIL]");

    let anthropic = br#"{"model":"m","max_tokens":5,"metadata":{"user_id":"a@b.io"},"tools":[{"name":"crm","description":"a@b.io","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":[{"type":"document","source":{"type":"text","media_type":"text/plain","data":"owner a@b.io"}},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo4111111111111111/a+b="}}]}]}"#;
    let Outcome::Masked { body, findings } = d.apply(BodyKind::AnthropicMessages, anthropic) else {
        panic!("expected masking");
    };
    assert_eq!(findings.summary(), "email=3");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["messages"][0]["content"][0]["source"]["data"],
        "owner [EMAIL]"
    );
    assert_eq!(
        v["messages"][0]["content"][1]["source"]["data"],
        "iVBORw0KGgo4111111111111111/a+b="
    );
    assert_eq!(v["tools"][0]["name"], "crm");

    // A "base64" payload that is not base64 is text, and is scanned.
    let body = br#"{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"x a@b.io"}},{"type":"image_url","image_url":{"url":"data:image/png;base64,x a@b.io"}}]}]}"#;
    let Outcome::Masked { findings, .. } = d.apply(BodyKind::AnthropicMessages, body) else {
        panic!("expected masking");
    };
    assert_eq!(findings.summary(), "email=2");

    let emb = br#"{"model":"e","input":"hi","user":"a@b.io"}"#;
    assert!(matches!(
        d.apply(BodyKind::Embeddings, emb),
        Outcome::Masked { .. }
    ));
}
