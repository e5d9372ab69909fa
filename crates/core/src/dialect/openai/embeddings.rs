//! `POST /v1/embeddings` bodies.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::request::{
    invalid_type, invalid_value, missing, opt_str, opt_u32, parse_object, req_str,
};
use super::wire::{lenient_u32, lenient_u64, to_json};
use crate::ir::{
    ApiError, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse, ErrorKind, Usage,
};

fn token(v: &Value, param: &str) -> Result<u32, ApiError> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| invalid_type(param, "a non-negative integer token id", v))
}

fn tokens(items: &[Value], param: &str) -> Result<Vec<u32>, ApiError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| token(v, &format!("{param}[{i}]")))
        .collect()
}

/// `input`: a string, an array of strings, an array of token ids (one
/// input), or an array of token arrays. Returns the inputs and whether the
/// client sent a single input.
fn decode_input(v: Option<&Value>) -> Result<(Vec<EmbeddingInput>, bool), ApiError> {
    let items = match v {
        None => return Err(missing("input")),
        Some(Value::String(s)) => return Ok((vec![EmbeddingInput::Text(s.clone())], true)),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(invalid_type("input", "a string or an array", other));
        }
    };
    let Some(first) = items.first() else {
        return Err(invalid_value(
            "input",
            "Invalid 'input': empty array. Expected at least one input.",
        ));
    };
    if first.is_number() {
        return Ok((vec![EmbeddingInput::Tokens(tokens(items, "input")?)], true));
    }
    let inputs = items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let param = format!("input[{i}]");
            match v {
                Value::String(s) => Ok(EmbeddingInput::Text(s.clone())),
                Value::Array(t) => Ok(EmbeddingInput::Tokens(tokens(t, &param)?)),
                other => Err(invalid_type(
                    &param,
                    "a string or an array of token ids",
                    other,
                )),
            }
        })
        .collect::<Result<_, _>>()?;
    Ok((inputs, false))
}

/// Decode a client's embeddings request.
pub fn decode_embeddings_request(body: &[u8]) -> Result<EmbeddingsRequest, ApiError> {
    let obj = parse_object(body)?;
    let model = req_str(&obj, "model", "")?;
    let (input, single) = decode_input(obj.get("input").filter(|v| !v.is_null()))?;
    let encoding_format = opt_str(&obj, "encoding_format", "")?;
    if let Some(f) = encoding_format.as_deref() {
        if f != "float" && f != "base64" {
            return Err(invalid_value(
                "encoding_format",
                format!("Invalid value for 'encoding_format': '{f}'. Supported values are: 'float' and 'base64'."),
            ));
        }
    }
    Ok(EmbeddingsRequest {
        model,
        input,
        single,
        dimensions: opt_u32(&obj, "dimensions", "")?,
        encoding_format,
        user: opt_str(&obj, "user", "")?,
    })
}

#[derive(Serialize)]
#[serde(untagged)]
enum InputOut<'a> {
    Text(&'a str),
    Tokens(&'a [u32]),
    Many(Vec<InputOut<'a>>),
}

impl<'a> InputOut<'a> {
    fn one(i: &'a EmbeddingInput) -> Self {
        match i {
            EmbeddingInput::Text(s) => InputOut::Text(s),
            EmbeddingInput::Tokens(t) => InputOut::Tokens(t),
        }
    }
}

#[derive(Serialize)]
struct EmbeddingsRequestOut<'a> {
    model: &'a str,
    input: InputOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
}

/// Encode an embeddings request for an upstream. `encoding_format` is not
/// forwarded: the upstream answers in its default (floats, which every
/// compatible supports) and [`encode_embeddings_response`] re-encodes in
/// the format the client asked for.
pub fn encode_embeddings_request(req: &EmbeddingsRequest, upstream_model: &str) -> Vec<u8> {
    let input = match req.input.as_slice() {
        [one] if req.single => InputOut::one(one),
        many => InputOut::Many(many.iter().map(InputOut::one).collect()),
    };
    to_json(&EmbeddingsRequestOut {
        model: upstream_model,
        input,
        dimensions: req.dimensions,
        user: req.user.as_deref(),
    })
}

#[derive(Deserialize)]
struct EmbeddingsResponseIn {
    #[serde(default)]
    model: Option<String>,
    data: Vec<EmbeddingIn>,
    #[serde(default)]
    usage: Option<EmbeddingsUsageIn>,
}

#[derive(Deserialize)]
struct EmbeddingIn {
    #[serde(default, deserialize_with = "lenient_u32")]
    index: u32,
    embedding: VectorIn,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum VectorIn {
    Floats(Vec<f32>),
    Base64(String),
}

#[derive(Deserialize)]
struct EmbeddingsUsageIn {
    #[serde(default, deserialize_with = "lenient_u64")]
    prompt_tokens: u64,
}

fn bad_gateway(msg: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::BadGateway, msg)
}

/// Little-endian `f32`s, as `encoding_format: base64` carries them.
fn decode_b64_vector(s: &str) -> Result<Vec<f32>, ApiError> {
    let bytes = B64
        .decode(s)
        .map_err(|e| bad_gateway(format!("upstream sent an invalid base64 embedding: {e}")))?;
    if bytes.len() % 4 != 0 {
        return Err(bad_gateway(
            "upstream sent a base64 embedding whose length is not a multiple of 4",
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Decode an upstream embeddings response; vectors may be float arrays or
/// base64 strings. Entries are ordered by `index`.
pub fn decode_embeddings_response(body: &[u8]) -> Result<EmbeddingsResponse, ApiError> {
    let r: EmbeddingsResponseIn = serde_json::from_slice(body).map_err(|e| {
        bad_gateway(format!(
            "upstream returned an invalid embeddings response: {e}"
        ))
    })?;
    let mut items = r.data;
    items.sort_by_key(|e| e.index);
    let data = items
        .into_iter()
        .map(|e| match e.embedding {
            VectorIn::Floats(v) => Ok(v),
            VectorIn::Base64(s) => decode_b64_vector(&s),
        })
        .collect::<Result<_, _>>()?;
    let prompt_tokens = r.usage.map_or(0, |u| u.prompt_tokens);
    Ok(EmbeddingsResponse {
        model: r.model.unwrap_or_default(),
        data,
        usage: Usage {
            input_tokens: prompt_tokens,
            ..Usage::default()
        },
    })
}

#[derive(Serialize)]
struct EmbeddingsResponseOut<'a> {
    object: &'static str,
    data: Vec<EmbeddingOut<'a>>,
    model: &'a str,
    usage: EmbeddingsUsageOut,
}

#[derive(Serialize)]
struct EmbeddingOut<'a> {
    object: &'static str,
    index: usize,
    embedding: VectorOut<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum VectorOut<'a> {
    Floats(&'a [f32]),
    Base64(String),
}

#[derive(Serialize)]
struct EmbeddingsUsageOut {
    prompt_tokens: u64,
    total_tokens: u64,
}

fn encode_b64_vector(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
    B64.encode(bytes)
}

/// Encode an embeddings response for an OpenAI client; with `base64`, each
/// vector is the base64 of its little-endian `f32` bytes (what openai-python
/// requests by default and decodes with `np.frombuffer(..., dtype="float32")`).
pub fn encode_embeddings_response(resp: &EmbeddingsResponse, base64: bool) -> Vec<u8> {
    let data = resp
        .data
        .iter()
        .enumerate()
        .map(|(index, v)| EmbeddingOut {
            object: "embedding",
            index,
            embedding: if base64 {
                VectorOut::Base64(encode_b64_vector(v))
            } else {
                VectorOut::Floats(v)
            },
        })
        .collect();
    to_json(&EmbeddingsResponseOut {
        object: "list",
        data,
        model: &resp.model,
        usage: EmbeddingsUsageOut {
            prompt_tokens: resp.usage.input_tokens,
            total_tokens: resp.usage.total_tokens(),
        },
    })
}
