//! Built-in provider presets, as data.
//!
//! A preset says which dialect a provider speaks, where it lives, how it
//! authenticates, which environment variables it reads and how it deviates
//! from its dialect's reference API ([`Quirks`]). Adding an OpenAI-compatible
//! provider is adding one entry here.

use crate::dialect::{Dialect, MaxTokensField, Quirks};

/// How the upstream expects its API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key in a named header (`api-key`, `x-api-key`, `x-goog-api-key`).
    Header(&'static str),
}

/// How request paths are built from the base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathStyle {
    /// `{base}/chat/completions`, `{base}/embeddings`, `{base}/models`.
    OpenAi,
    /// Azure OpenAI classic: `{base}/openai/deployments/{deployment}/chat/completions?api-version=…`.
    AzureDeployment,
    /// `{base}/v1/messages`.
    Anthropic,
    /// `{base}/models/{model}:generateContent` (and stream / embed variants).
    Gemini,
}

/// One built-in provider kind.
#[derive(Debug, Clone)]
pub struct Preset {
    /// The `kind:` value in the config file.
    pub kind: &'static str,
    pub display_name: &'static str,
    pub dialect: Dialect,
    pub path_style: PathStyle,
    /// Default base URL; `None` when it must be configured (Azure, generic).
    pub base_url: Option<&'static str>,
    pub auth: AuthStyle,
    /// Environment variables holding the API key, in order of preference.
    /// Empty for local servers that need no key.
    pub key_env: &'static [&'static str],
    /// Environment variable that overrides the base URL.
    pub base_url_env: Option<&'static str>,
    /// Whether a key is required at all.
    pub key_required: bool,
    /// Headers every request carries.
    pub default_headers: &'static [(&'static str, &'static str)],
    pub quirks: Quirks,
    pub embeddings: bool,
    /// Upstream models exposed as aliases when the provider is configured
    /// from the environment only (no config file).
    pub default_models: &'static [&'static str],
    /// Model-name prefixes that route to this provider in environment mode.
    pub model_prefixes: &'static [&'static str],
}

const fn compat() -> Quirks {
    Quirks {
        max_tokens_field: MaxTokensField::MaxTokens,
        stream_options: true,
        n: false,
        seed: true,
        parallel_tool_calls: false,
        json_schema: true,
        developer_role: false,
        user: true,
        penalties: true,
        default_max_tokens: 4096,
    }
}

const fn openai_quirks() -> Quirks {
    Quirks::REFERENCE
}

const fn oa(
    kind: &'static str,
    display_name: &'static str,
    base_url: &'static str,
    key_env: &'static [&'static str],
    quirks: Quirks,
) -> Preset {
    Preset {
        kind,
        display_name,
        dialect: Dialect::OpenAi,
        path_style: PathStyle::OpenAi,
        base_url: Some(base_url),
        auth: AuthStyle::Bearer,
        key_env,
        base_url_env: None,
        key_required: true,
        default_headers: &[],
        quirks,
        embeddings: false,
        default_models: &[],
        model_prefixes: &[],
    }
}

/// Every built-in preset.
pub fn presets() -> &'static [Preset] {
    &PRESETS
}

/// Look a preset up by its `kind`.
pub fn preset(kind: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.kind == kind)
}

static PRESETS: [Preset; 25] = [
    Preset {
        base_url_env: Some("OPENAI_BASE_URL"),
        embeddings: true,
        default_models: &[
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "o4-mini",
            "text-embedding-3-small",
            "text-embedding-3-large",
        ],
        model_prefixes: &["gpt-", "o1", "o3", "o4", "text-embedding-", "chatgpt-"],
        ..oa(
            "openai",
            "OpenAI",
            "https://api.openai.com/v1",
            &["OPENAI_API_KEY"],
            openai_quirks(),
        )
    },
    Preset {
        path_style: PathStyle::AzureDeployment,
        base_url: None,
        auth: AuthStyle::Header("api-key"),
        base_url_env: Some("AZURE_OPENAI_ENDPOINT"),
        embeddings: true,
        ..oa(
            "azure",
            "Azure OpenAI",
            "",
            &["AZURE_OPENAI_API_KEY"],
            openai_quirks(),
        )
    },
    Preset {
        kind: "anthropic",
        display_name: "Anthropic",
        dialect: Dialect::Anthropic,
        path_style: PathStyle::Anthropic,
        base_url: Some("https://api.anthropic.com"),
        auth: AuthStyle::Header("x-api-key"),
        key_env: &["ANTHROPIC_API_KEY"],
        base_url_env: Some("ANTHROPIC_BASE_URL"),
        key_required: true,
        default_headers: &[("anthropic-version", "2023-06-01")],
        quirks: openai_quirks(),
        embeddings: false,
        default_models: &["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"],
        model_prefixes: &["claude-"],
    },
    Preset {
        kind: "gemini",
        display_name: "Google Gemini",
        dialect: Dialect::Gemini,
        path_style: PathStyle::Gemini,
        base_url: Some("https://generativelanguage.googleapis.com/v1beta"),
        auth: AuthStyle::Header("x-goog-api-key"),
        key_env: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        base_url_env: None,
        key_required: true,
        default_headers: &[],
        quirks: openai_quirks(),
        embeddings: true,
        default_models: &[
            "gemini-2.5-flash",
            "gemini-2.5-pro",
            "gemini-2.5-flash-lite",
            "gemini-embedding-001",
        ],
        model_prefixes: &["gemini-"],
    },
    Preset {
        model_prefixes: &[
            "mistral-",
            "codestral-",
            "ministral-",
            "magistral-",
            "pixtral-",
        ],
        embeddings: true,
        quirks: Quirks {
            stream_options: false,
            seed: false,
            user: false,
            n: true,
            ..compat()
        },
        ..oa(
            "mistral",
            "Mistral AI",
            "https://api.mistral.ai/v1",
            &["MISTRAL_API_KEY"],
            compat(),
        )
    },
    oa(
        "groq",
        "Groq",
        "https://api.groq.com/openai/v1",
        &["GROQ_API_KEY"],
        Quirks {
            parallel_tool_calls: true,
            ..compat()
        },
    ),
    Preset {
        model_prefixes: &["deepseek-"],
        default_models: &["deepseek-chat", "deepseek-reasoner"],
        ..oa(
            "deepseek",
            "DeepSeek",
            "https://api.deepseek.com",
            &["DEEPSEEK_API_KEY"],
            compat(),
        )
    },
    Preset {
        embeddings: true,
        ..oa(
            "together",
            "Together AI",
            "https://api.together.xyz/v1",
            &["TOGETHER_API_KEY", "TOGETHERAI_API_KEY"],
            Quirks {
                n: true,
                ..compat()
            },
        )
    },
    Preset {
        embeddings: true,
        ..oa(
            "fireworks",
            "Fireworks AI",
            "https://api.fireworks.ai/inference/v1",
            &["FIREWORKS_API_KEY"],
            Quirks {
                n: true,
                ..compat()
            },
        )
    },
    oa(
        "openrouter",
        "OpenRouter",
        "https://openrouter.ai/api/v1",
        &["OPENROUTER_API_KEY"],
        Quirks {
            parallel_tool_calls: true,
            ..compat()
        },
    ),
    Preset {
        model_prefixes: &["grok-"],
        ..oa(
            "xai",
            "xAI (Grok)",
            "https://api.x.ai/v1",
            &["XAI_API_KEY"],
            Quirks {
                n: true,
                parallel_tool_calls: true,
                max_tokens_field: MaxTokensField::MaxCompletionTokens,
                ..compat()
            },
        )
    },
    Preset {
        model_prefixes: &["sonar"],
        ..oa(
            "perplexity",
            "Perplexity",
            "https://api.perplexity.ai",
            &["PERPLEXITY_API_KEY", "PPLX_API_KEY"],
            Quirks {
                stream_options: false,
                seed: false,
                user: false,
                ..compat()
            },
        )
    },
    Preset {
        model_prefixes: &["qwen-", "qwen2", "qwen3", "qwq-"],
        embeddings: true,
        base_url_env: Some("DASHSCOPE_BASE_URL"),
        ..oa(
            "qwen",
            "Qwen / Alibaba DashScope (compatible mode)",
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
            &["DASHSCOPE_API_KEY", "QWEN_API_KEY"],
            Quirks {
                n: true,
                parallel_tool_calls: true,
                ..compat()
            },
        )
    },
    Preset {
        model_prefixes: &["moonshot-", "kimi-"],
        ..oa(
            "moonshot",
            "Moonshot AI (Kimi)",
            "https://api.moonshot.cn/v1",
            &["MOONSHOT_API_KEY"],
            Quirks {
                n: true,
                ..compat()
            },
        )
    },
    Preset {
        model_prefixes: &["glm-"],
        embeddings: true,
        ..oa(
            "zhipu",
            "Zhipu AI (GLM)",
            "https://open.bigmodel.cn/api/paas/v4",
            &["ZHIPUAI_API_KEY", "ZHIPU_API_KEY"],
            Quirks {
                seed: false,
                penalties: false,
                ..compat()
            },
        )
    },
    Preset {
        model_prefixes: &["ernie-"],
        embeddings: true,
        ..oa(
            "qianfan",
            "Baidu Qianfan (ERNIE)",
            "https://qianfan.baidubce.com/v2",
            &["QIANFAN_API_KEY"],
            compat(),
        )
    },
    Preset {
        model_prefixes: &["hunyuan-"],
        embeddings: true,
        ..oa(
            "hunyuan",
            "Tencent Hunyuan",
            "https://api.hunyuan.cloud.tencent.com/v1",
            &["HUNYUAN_API_KEY"],
            Quirks {
                seed: true,
                ..compat()
            },
        )
    },
    Preset {
        model_prefixes: &["doubao-"],
        embeddings: true,
        ..oa(
            "volcengine",
            "Volcengine Ark (Doubao)",
            "https://ark.cn-beijing.volces.com/api/v3",
            &["ARK_API_KEY", "VOLCENGINE_API_KEY"],
            compat(),
        )
    },
    Preset {
        model_prefixes: &["minimax-", "abab"],
        ..oa(
            "minimax",
            "MiniMax",
            "https://api.minimax.io/v1",
            &["MINIMAX_API_KEY"],
            Quirks {
                seed: false,
                penalties: false,
                ..compat()
            },
        )
    },
    Preset {
        embeddings: true,
        ..oa(
            "siliconflow",
            "SiliconFlow",
            "https://api.siliconflow.cn/v1",
            &["SILICONFLOW_API_KEY"],
            Quirks {
                n: true,
                ..compat()
            },
        )
    },
    Preset {
        key_required: false,
        base_url_env: Some("OLLAMA_BASE_URL"),
        embeddings: true,
        ..oa(
            "ollama",
            "Ollama (OpenAI-compatible /v1)",
            "http://127.0.0.1:11434/v1",
            &["OLLAMA_API_KEY"],
            compat(),
        )
    },
    Preset {
        key_required: false,
        base_url_env: Some("VLLM_BASE_URL"),
        embeddings: true,
        ..oa(
            "vllm",
            "vLLM",
            "http://127.0.0.1:8000/v1",
            &["VLLM_API_KEY"],
            Quirks {
                n: true,
                parallel_tool_calls: true,
                ..compat()
            },
        )
    },
    Preset {
        key_required: false,
        base_url_env: Some("LMSTUDIO_BASE_URL"),
        embeddings: true,
        ..oa(
            "lmstudio",
            "LM Studio",
            "http://127.0.0.1:1234/v1",
            &["LMSTUDIO_API_KEY"],
            compat(),
        )
    },
    Preset {
        model_prefixes: &["command-"],
        embeddings: true,
        ..oa(
            "cohere",
            "Cohere (OpenAI compatibility API)",
            "https://api.cohere.ai/compatibility/v1",
            &["COHERE_API_KEY", "CO_API_KEY"],
            Quirks {
                seed: true,
                parallel_tool_calls: false,
                ..compat()
            },
        )
    },
    Preset {
        base_url: None,
        key_required: false,
        embeddings: true,
        ..oa(
            "openai_compatible",
            "Any OpenAI-compatible server",
            "",
            &[],
            compat(),
        )
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_unique_and_at_least_17() {
        let mut kinds: Vec<_> = presets().iter().map(|p| p.kind).collect();
        kinds.sort_unstable();
        let n = kinds.len();
        kinds.dedup();
        assert_eq!(kinds.len(), n);
        assert!(n >= 17);
    }

    #[test]
    fn only_openai_quirks_allow_passthrough() {
        assert!(preset("openai").unwrap().quirks.is_passthrough());
        assert!(!preset("deepseek").unwrap().quirks.is_passthrough());
    }
}
