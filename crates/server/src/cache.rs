//! The exact-match response cache (`cache:` in the config).
//!
//! A successful non-streaming chat answer is kept, in the caller's dialect,
//! under a SHA-256 of everything that determines it: the sharing scope (the
//! tenant by default, so tenants never see each other's answers), the API
//! the client called, the alias actually routed to, and the request body
//! as received (PII masking is deterministic, so equal bodies were masked
//! alike; looking up first spares hits the masking scan). An identical
//! request within the TTL is answered from memory, after authentication,
//! model permissions, rate limits and budgets have admitted it, and is
//! recorded in usage as a cache hit at zero cost.
//!
//! Callers steer it with the standard request header: `Cache-Control:
//! no-cache` skips the lookup but stores the fresh answer, `no-store` does
//! neither. Responses say `x-switchyard-cache: hit | miss | refresh |
//! bypass`, and hits carry `age` (seconds). Streams are not cached.
//!
//! In memory per replica (moka: TinyLFU admission, LRU eviction, sized by
//! body bytes); nothing here waits on I/O.

use crate::governance::Principal;
use axum::http::HeaderMap;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who shares cache entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Callers of one tenant share answers (default).
    Tenant,
    /// Each API key has its own entries.
    Key,
    /// Every caller shares (single-tenant deployments).
    Global,
}

/// Validated `cache:` settings.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    pub ttl: Duration,
    /// Bytes of cached bodies (plus a small per-entry overhead).
    pub max_size: usize,
    pub scope: Scope,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(600),
            max_size: 64 * 1024 * 1024,
            scope: Scope::Tenant,
        }
    }
}

/// What the caller asked of the cache (`Cache-Control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Directive {
    #[default]
    Use,
    /// `no-cache`: do not answer from the cache; store the fresh answer.
    Refresh,
    /// `no-store`: neither look up nor store.
    Bypass,
}

impl Directive {
    pub fn from_headers(h: &HeaderMap) -> Directive {
        let mut d = Directive::Use;
        for v in h.get_all(axum::http::header::CACHE_CONTROL) {
            let Ok(v) = v.to_str() else { continue };
            for part in v.split(',') {
                let p = part.trim();
                if p.eq_ignore_ascii_case("no-store") {
                    return Directive::Bypass;
                }
                if p.eq_ignore_ascii_case("no-cache") || p.eq_ignore_ascii_case("max-age=0") {
                    d = Directive::Refresh;
                }
            }
        }
        d
    }
}

/// A cached answer.
#[derive(Debug)]
pub struct Entry {
    pub body: Bytes,
    pub stored: Instant,
    /// The deployment that produced it (its route headers are repeated).
    pub deployment: Option<Arc<crate::routing::Deployment>>,
    /// It was relayed untranslated.
    pub passthrough: bool,
    /// The request's `x-switchyard-pii` (what masking changed), repeated on hits.
    pub pii: Option<axum::http::HeaderValue>,
}

pub type Key = [u8; 32];

/// A copy of `body` for keeping: an upstream body can be a slice of a
/// larger read buffer, which it would keep alive unseen by the weigher.
fn owned(body: &Bytes) -> Bytes {
    Bytes::copy_from_slice(body)
}

/// The cache. One per gateway, shared by all I/O workers.
pub struct ResponseCache {
    entries: moka::sync::Cache<Key, Arc<Entry>>,
    scope: Scope,
    ttl: Duration,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("scope", &self.scope)
            .field("ttl", &self.ttl)
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

/// Bookkeeping bytes counted per entry besides its body.
const ENTRY_OVERHEAD: usize = 128;

impl ResponseCache {
    pub fn new(cfg: &CacheConfig) -> ResponseCache {
        let entries = moka::sync::Cache::builder()
            .max_capacity(cfg.max_size as u64)
            .weigher(|_k: &Key, e: &Arc<Entry>| {
                u32::try_from(e.body.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .time_to_live(cfg.ttl)
            .build();
        ResponseCache {
            entries,
            scope: cfg.scope,
            ttl: cfg.ttl,
            hits: Default::default(),
            misses: Default::default(),
        }
    }

    /// The key of a request. Fields are length-prefixed, so no two
    /// different inputs share a preimage.
    pub fn key(
        &self,
        principal: Option<&Principal>,
        ingress: &str,
        alias: &str,
        body: &[u8],
    ) -> Key {
        let scope: &str = match (self.scope, principal) {
            (Scope::Global, _) | (_, None) => "",
            (Scope::Tenant, Some(p)) => p.tenant_id.as_deref().unwrap_or(""),
            (Scope::Key, Some(p)) => p.key_id.as_deref().unwrap_or(""),
        };
        let mut h = Sha256::new();
        for part in [scope.as_bytes(), ingress.as_bytes(), alias.as_bytes(), body] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    pub fn get(&self, key: &Key) -> Option<Arc<Entry>> {
        let e = self.entries.get(key);
        let counter = if e.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        e
    }

    pub fn put(&self, key: Key, entry: Entry) {
        self.entries.insert(key, Arc::new(entry));
    }

    /// Keep a fresh successful answer (a copy of its bytes) under `key`.
    pub fn keep(
        &self,
        key: Key,
        body: &Bytes,
        deployment: &Arc<crate::routing::Deployment>,
        passthrough: bool,
        pii: Option<axum::http::HeaderValue>,
    ) {
        self.put(
            key,
            Entry {
                body: owned(body),
                stored: Instant::now(),
                deployment: Some(deployment.clone()),
                passthrough,
                pii,
            },
        );
    }

    /// `(hits, misses, entries, weighted bytes)` for metrics.
    pub fn stats(&self) -> (u64, u64, u64, u64) {
        self.entries.run_pending_tasks();
        (
            self.hits.load(std::sync::atomic::Ordering::Relaxed),
            self.misses.load(std::sync::atomic::Ordering::Relaxed),
            self.entries.entry_count(),
            self.entries.weighted_size(),
        )
    }
}

/// Says whether a response came from the cache.
pub const X_CACHE: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-switchyard-cache");

/// The request-path side of the cache, shared by chat and embeddings.
pub struct Lookup {
    /// Where a fresh answer is stored (`None`: the cache does not apply).
    pub key: Option<Key>,
    /// The cached answer, on a hit.
    pub hit: Option<Arc<Entry>>,
    directive: Directive,
}

impl Lookup {
    /// Look a request up (when `applies`: cache on, alias not exempt,
    /// not a stream, not `no-store`).
    pub fn new(
        cache: Option<&ResponseCache>,
        applies: bool,
        ctx: &crate::pipeline::RequestCtx,
        ingress: &str,
        alias: &str,
        body: &[u8],
    ) -> Lookup {
        let key = match cache {
            Some(c) if applies && ctx.cache != Directive::Bypass => {
                Some(c.key(ctx.principal.as_ref(), ingress, alias, body))
            }
            _ => None,
        };
        let hit = match (cache, &key) {
            (Some(c), Some(k)) if ctx.cache == Directive::Use => c.get(k),
            _ => None,
        };
        Lookup {
            key,
            hit,
            directive: ctx.cache,
        }
    }

    /// `x-switchyard-cache` for an answer that did not come from the cache.
    pub fn status(&self) -> axum::http::HeaderValue {
        axum::http::HeaderValue::from_static(match (&self.key, self.directive) {
            (None, _) => "bypass",
            (Some(_), Directive::Refresh) => "refresh",
            (Some(_), _) => "miss",
        })
    }
}

impl Entry {
    /// The headers of a response served from this entry.
    pub fn decorate(&self, h: &mut HeaderMap) {
        use axum::http::{header, HeaderValue};
        h.insert(X_CACHE, HeaderValue::from_static("hit"));
        h.insert(
            header::AGE,
            HeaderValue::from(self.stored.elapsed().as_secs()),
        );
        h.insert(
            axum::http::HeaderName::from_static("x-switchyard-attempts"),
            HeaderValue::from(0u32),
        );
        if let Some(v) = &self.pii {
            h.insert(crate::guard::X_PII, v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(scope: Scope) -> ResponseCache {
        ResponseCache::new(&CacheConfig {
            scope,
            ..CacheConfig::default()
        })
    }

    fn principal(tenant: &str, key: &str) -> Principal {
        let mut p = Principal::static_key();
        p.tenant_id = Some(tenant.into());
        p.key_id = Some(key.into());
        p
    }

    #[test]
    fn keys_separate_scope_api_alias_and_body() {
        let c = cache(Scope::Tenant);
        let a = principal("t1", "k1");
        let base = c.key(Some(&a), "openai", "m", b"{}");
        assert_eq!(
            base,
            c.key(Some(&principal("t1", "k2")), "openai", "m", b"{}")
        );
        assert_ne!(
            base,
            c.key(Some(&principal("t2", "k1")), "openai", "m", b"{}")
        );
        assert_ne!(base, c.key(Some(&a), "anthropic", "m", b"{}"));
        assert_ne!(base, c.key(Some(&a), "openai", "m2", b"{}"));
        assert_ne!(base, c.key(Some(&a), "openai", "m", b"{ }"));
        // Length prefixes: moving a byte between fields changes the key.
        assert_ne!(c.key(None, "ab", "c", b""), c.key(None, "a", "bc", b""));
        let k = cache(Scope::Key);
        assert_ne!(
            k.key(Some(&a), "openai", "m", b"{}"),
            k.key(Some(&principal("t1", "k2")), "openai", "m", b"{}")
        );
        let g = cache(Scope::Global);
        assert_eq!(
            g.key(Some(&a), "openai", "m", b"{}"),
            g.key(Some(&principal("t2", "k2")), "openai", "m", b"{}")
        );
    }

    #[test]
    fn directives_follow_cache_control() {
        let d = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(axum::http::header::CACHE_CONTROL, v.parse().unwrap());
            Directive::from_headers(&h)
        };
        assert_eq!(Directive::from_headers(&HeaderMap::new()), Directive::Use);
        assert_eq!(d("no-cache"), Directive::Refresh);
        assert_eq!(d("max-age=0"), Directive::Refresh);
        assert_eq!(d("No-Cache, no-store"), Directive::Bypass);
        assert_eq!(d("max-age=60"), Directive::Use);
    }

    #[test]
    fn entries_expire_and_are_bounded_by_size() {
        let c = ResponseCache::new(&CacheConfig {
            ttl: Duration::from_millis(50),
            max_size: 10_000,
            scope: Scope::Global,
        });
        let entry = |n: usize| Entry {
            body: Bytes::from(vec![b'x'; n]),
            stored: Instant::now(),
            deployment: None,
            passthrough: true,
            pii: None,
        };
        let k = c.key(None, "openai", "m", b"1");
        c.put(k, entry(10));
        assert!(c.get(&k).is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(c.get(&k).is_none(), "expired");
        for i in 0..100u32 {
            c.put(c.key(None, "openai", "m", &i.to_le_bytes()), entry(1000));
        }
        let (_, _, _, bytes) = c.stats();
        assert!(bytes <= 10_000, "{bytes} bytes held");
    }
}
