//! `models/{m}:batchEmbedContents`.

use super::model_resource;
use super::wire::{
    BatchEmbedContentsRequest, BatchEmbedContentsResponse, Content, EmbedContentRequest, Part,
};
use crate::ir::{
    ApiError, EmbeddingInput, EmbeddingsRequest, EmbeddingsResponse, ErrorKind, Usage,
};

/// Encode an embeddings request as one `batchEmbedContents` body: one
/// `EmbedContentRequest` per input. Token-array inputs are rejected (400):
/// Gemini embeds text only.
pub fn encode_embeddings_request(
    req: &EmbeddingsRequest,
    upstream_model: &str,
) -> Result<Vec<u8>, ApiError> {
    if req.input.is_empty() {
        return Err(ApiError::invalid_param("input", "input must not be empty"));
    }
    let model = model_resource(upstream_model);
    let requests = req
        .input
        .iter()
        .map(|input| match input {
            EmbeddingInput::Text(text) => Ok(EmbedContentRequest {
                model: model.clone(),
                content: Content {
                    role: None,
                    parts: Some(vec![Part {
                        text: Some(text.clone()),
                        ..Part::default()
                    }]),
                },
                output_dimensionality: req.dimensions,
            }),
            EmbeddingInput::Tokens(_) => Err(ApiError::invalid_param(
                "input",
                "this model embeds text only; token-array inputs are not supported",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    serde_json::to_vec(&BatchEmbedContentsRequest { requests })
        .map_err(|e| ApiError::invalid(format!("cannot encode Gemini embeddings request: {e}")))
}

/// Decode a `batchEmbedContents` response. Gemini reports no token usage
/// here and this function does not see the inputs, so `usage` is zero
/// unless the body carries `usageMetadata`; callers should fill it with
/// [`estimate_embeddings_usage`].
pub fn decode_embeddings_response(
    body: &[u8],
    model: &str,
) -> Result<EmbeddingsResponse, ApiError> {
    let resp: BatchEmbedContentsResponse = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::BadGateway,
            format!("invalid Gemini embeddings response: {e}"),
        )
    })?;
    let Some(embeddings) = resp.embeddings else {
        return Err(ApiError::new(
            ErrorKind::BadGateway,
            "Gemini embeddings response has no `embeddings`",
        ));
    };
    let data = embeddings
        .into_iter()
        .map(|e| e.values.unwrap_or_default())
        .collect();
    let usage = resp
        .usage_metadata
        .map(|u| {
            let n = u.prompt_token_count.unwrap_or(0);
            Usage {
                input_tokens: n,
                ..Usage::default()
            }
        })
        .unwrap_or_default();
    Ok(EmbeddingsResponse {
        model: model.to_owned(),
        data,
        usage,
    })
}

/// Estimated usage for an embeddings request Gemini does not meter in its
/// response: ⌈characters / 4⌉ per text input (a common rule of thumb for
/// English text with SentencePiece-style tokenizers), token arrays counted
/// exactly.
pub fn estimate_embeddings_usage(req: &EmbeddingsRequest) -> Usage {
    let input_tokens = req
        .input
        .iter()
        .map(|i| match i {
            EmbeddingInput::Text(t) => (t.chars().count() as u64).div_ceil(4),
            EmbeddingInput::Tokens(ts) => ts.len() as u64,
        })
        .sum();
    Usage {
        input_tokens,
        ..Usage::default()
    }
}
