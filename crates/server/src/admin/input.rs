//! Request parsing for the admin API with errors that name the field:
//! JSON bodies (unknown fields refused) and query strings.

use super::error::AdminError;
use super::ops::parse_time;
use crate::store::{Bucket, BudgetAction, GroupBy, Millis, Role, Scope, TenantStatus};
use serde_json::{Map, Value};

/// A JSON object body.
#[derive(Debug, Default)]
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// Parse `body` (empty = `{}`), refusing fields not in `allowed`.
    pub fn parse(body: &[u8], allowed: &[&str]) -> Result<Fields, AdminError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields::default());
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| AdminError::invalid("body", format!("the body is not valid JSON: {e}")))?;
        let Value::Object(map) = v else {
            return Err(AdminError::invalid(
                "body",
                "the body must be a JSON object",
            ));
        };
        if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(AdminError::invalid(
                k,
                format!(
                    "unknown field `{k}` (expected one of: {})",
                    allowed.join(", ")
                ),
            ));
        }
        Ok(Fields { map })
    }

    /// Present and not null.
    fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    pub fn has(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    fn wrong(name: &str, what: &str) -> AdminError {
        AdminError::invalid(name, format!("`{name}` must be {what}"))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, AdminError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Self::wrong(name, "a string")),
        }
    }

    pub fn required_string(&self, name: &str) -> Result<String, AdminError> {
        self.string(name)?
            .ok_or_else(|| AdminError::invalid(name, format!("`{name}` is required")))
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, AdminError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| Self::wrong(name, "an integer")),
        }
    }

    pub fn float(&self, name: &str) -> Result<Option<f64>, AdminError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| Self::wrong(name, "a number")),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, AdminError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(Self::wrong(name, "true or false")),
        }
    }

    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>, AdminError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        AdminError::invalid(&format!("{name}[{i}]"), "must be a string")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(Self::wrong(name, "an array of strings")),
        }
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f64>>, AdminError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_f64().ok_or_else(|| {
                        AdminError::invalid(&format!("{name}[{i}]"), "must be a number")
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(Self::wrong(name, "an array of numbers")),
        }
    }

    pub fn json(&self, name: &str) -> Option<Value> {
        self.get(name).cloned()
    }

    /// A time: Unix ms or an RFC 3339 string.
    pub fn time(&self, name: &str) -> Result<Option<Millis>, AdminError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| Self::wrong(name, "Unix milliseconds or an RFC 3339 time")),
            Some(Value::String(s)) => parse_time(s)
                .map(Some)
                .ok_or_else(|| Self::wrong(name, "Unix milliseconds or an RFC 3339 time")),
            Some(_) => Err(Self::wrong(name, "Unix milliseconds or an RFC 3339 time")),
        }
    }

    /// `Some(None)` when the field is explicitly `null`.
    pub fn nullable_time(&self, name: &str) -> Result<Option<Option<Millis>>, AdminError> {
        match self.map.get(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(_) => Ok(Some(self.time(name)?)),
        }
    }

    pub fn parsed<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        choices: &str,
    ) -> Result<Option<T>, AdminError> {
        match self.string(name)? {
            None => Ok(None),
            Some(s) => parse(&s).map(Some).ok_or_else(|| {
                AdminError::invalid(name, format!("`{s}` is not valid for `{name}` ({choices})"))
            }),
        }
    }

    pub fn role(&self, name: &str) -> Result<Option<Role>, AdminError> {
        self.parsed(name, Role::parse, "admin, developer, viewer, billing")
    }

    pub fn status(&self, name: &str) -> Result<Option<TenantStatus>, AdminError> {
        self.parsed(
            name,
            TenantStatus::parse,
            "active, suspended, trial, expired",
        )
    }

    pub fn scope(&self, name: &str) -> Result<Option<Scope>, AdminError> {
        self.parsed(name, Scope::parse, "tenant, user, key")
    }

    pub fn action(&self, name: &str) -> Result<Option<BudgetAction>, AdminError> {
        self.parsed(name, parse_action, "block, downgrade")
    }
}

pub fn parse_action(s: &str) -> Option<BudgetAction> {
    match s {
        "block" => Some(BudgetAction::Block),
        "downgrade" => Some(BudgetAction::Downgrade),
        _ => None,
    }
}

pub fn parse_group(s: &str) -> Option<GroupBy> {
    Some(match s {
        "tenant" => GroupBy::Tenant,
        "user" => GroupBy::User,
        "key" => GroupBy::Key,
        "model" => GroupBy::Model,
        "provider" => GroupBy::Provider,
        _ => return None,
    })
}

pub fn parse_bucket(s: &str) -> Option<Bucket> {
    match s {
        "hour" => Some(Bucket::Hour),
        "day" => Some(Bucket::Day),
        _ => None,
    }
}

/// Query-string parameters (validated against the route's documented list
/// by the dispatcher).
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub pairs: Vec<(String, String)>,
}

impl Query {
    /// The last non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    pub fn time(&self, name: &str) -> Result<Option<Millis>, AdminError> {
        match self.get(name) {
            None => Ok(None),
            Some(s) => parse_time(s).map(Some).ok_or_else(|| {
                AdminError::invalid(
                    name,
                    format!("`{s}` is not a time: give RFC 3339 (2025-01-31T00:00:00Z) or Unix milliseconds"),
                )
            }),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, AdminError> {
        match self.get(name) {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| AdminError::invalid(name, format!("`{s}` is not an integer"))),
        }
    }

    pub fn parsed<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        choices: &str,
    ) -> Result<Option<T>, AdminError> {
        match self.get(name) {
            None => Ok(None),
            Some(s) => parse(s).map(Some).ok_or_else(|| {
                AdminError::invalid(name, format!("`{s}` is not valid for `{name}` ({choices})"))
            }),
        }
    }
}
