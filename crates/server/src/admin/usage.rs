//! `/admin/usage` handlers and the report formats (JSON, CSV, table)
//! shared with `switchyard usage`.

use super::error::AdminError;
use super::input::{parse_bucket, parse_group, Query};
use super::ops::{self, format_time, UsageQuery};
use super::{csv_response, json_response, Req};
use crate::store::{GroupBy, UsageFilter, UsageRow, UsageTotals};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

/// Output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Table,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "table" => Some(Format::Table),
            _ => None,
        }
    }
}

fn filter(q: &Query) -> Result<UsageFilter, AdminError> {
    Ok(UsageFilter {
        from: q.time("from")?,
        to: q.time("to")?,
        tenant_id: q.string("tenant_id"),
        user_id: q.string("user_id"),
        key_id: q.string("key_id"),
        alias: q.string("model"),
        provider: q.string("provider"),
    })
}

fn http_format(q: &Query) -> Result<Format, AdminError> {
    match q.get("format") {
        None | Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::Csv),
        Some(other) => Err(AdminError::invalid(
            "format",
            format!("`{other}` is not a format (json or csv)"),
        )),
    }
}

pub(crate) async fn report(r: Req) -> Result<Response, AdminError> {
    let q = UsageQuery {
        filter: filter(&r.query)?,
        group_by: r.query.parsed(
            "group_by",
            parse_group,
            "tenant, user, key, model, provider",
        )?,
        bucket: r.query.parsed("bucket", parse_bucket, "hour, day")?,
    };
    let format = http_format(&r.query)?;
    let group = q.group_by;
    let bucket = q.bucket;
    let rows = ops::usage_report(&r.ctx(), q).await?;
    Ok(match format {
        Format::Csv | Format::Table => csv_response(totals_csv(&rows, group, bucket.is_some())),
        Format::Json => json_response(
            StatusCode::OK,
            &json!({
                "data": rows,
                "group_by": group.map(group_name),
                "bucket": bucket,
            }),
        ),
    })
}

pub(crate) async fn records(r: Req) -> Result<Response, AdminError> {
    let f = filter(&r.query)?;
    let limit = r.query.int("limit")?;
    let format = http_format(&r.query)?;
    let rows = ops::usage_records(&r.ctx(), f, limit).await?;
    Ok(match format {
        Format::Csv | Format::Table => csv_response(records_csv(&rows)),
        Format::Json => json_response(StatusCode::OK, &json!({ "data": rows })),
    })
}

pub fn group_name(g: GroupBy) -> &'static str {
    match g {
        GroupBy::Tenant => "tenant",
        GroupBy::User => "user",
        GroupBy::Key => "key",
        GroupBy::Model => "model",
        GroupBy::Provider => "provider",
    }
}

/// One CSV field (RFC 4180 quoting).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv_line(fields: &[String]) -> String {
    let mut l = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    l.push_str("\r\n");
    l
}

const TOTALS_HEADER: [&str; 7] = [
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost",
    "unpriced",
];

/// Totals (or a series) as CSV with a header row. The first column is the
/// group (`group` or the group-by name); a series adds `bucket_start`.
pub fn totals_csv(rows: &[UsageTotals], group: Option<GroupBy>, series: bool) -> String {
    let mut head: Vec<String> = Vec::new();
    if series {
        head.push("bucket_start".into());
    }
    head.push(group.map_or("group", group_name).into());
    head.extend(TOTALS_HEADER.iter().map(|s| s.to_string()));
    let mut out = csv_line(&head);
    for r in rows {
        let mut f: Vec<String> = Vec::new();
        if series {
            f.push(r.bucket_start.map(format_time).unwrap_or_default());
        }
        f.push(r.key.clone());
        f.extend([
            r.requests.to_string(),
            r.errors.to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cached_input_tokens.to_string(),
            format!("{:.6}", r.cost),
            r.unpriced.to_string(),
        ]);
        out.push_str(&csv_line(&f));
    }
    out
}

const RECORD_HEADER: [&str; 23] = [
    "request_id",
    "time",
    "tenant_id",
    "user_id",
    "key_id",
    "model",
    "provider",
    "deployment",
    "upstream_model",
    "ingress",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost",
    "estimated",
    "latency_ms",
    "ttft_ms",
    "status",
    "error_class",
    "cache_hit",
    "attempts",
    "stream",
    "unpriced",
];

/// Usage records as CSV with a header row.
pub fn records_csv(rows: &[UsageRow]) -> String {
    let head: Vec<String> = RECORD_HEADER.iter().map(|s| s.to_string()).collect();
    let mut out = csv_line(&head);
    let o = |s: &Option<String>| s.clone().unwrap_or_default();
    for r in rows {
        out.push_str(&csv_line(&[
            r.request_id.clone(),
            format_time(r.ts),
            o(&r.tenant_id),
            o(&r.user_id),
            o(&r.key_id),
            r.alias.clone(),
            r.provider.clone(),
            r.deployment.clone(),
            r.upstream_model.clone(),
            r.ingress.clone(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cached_input_tokens.to_string(),
            format!("{:.6}", r.cost),
            r.estimated.to_string(),
            format!("{:.1}", r.latency_ms),
            r.ttft_ms.map(|t| format!("{t:.1}")).unwrap_or_default(),
            r.status.to_string(),
            o(&r.error_class),
            r.cache_hit.to_string(),
            r.attempts.to_string(),
            r.stream.to_string(),
            r.unpriced.to_string(),
        ]));
    }
    out
}

/// Totals as an aligned text table (the CLI's default).
pub fn totals_table(rows: &[UsageTotals], group: Option<GroupBy>, series: bool) -> String {
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut head = Vec::new();
    if series {
        head.push("BUCKET".to_owned());
    }
    head.push(group.map_or("GROUP", group_name).to_uppercase());
    head.extend(
        [
            "REQUESTS",
            "ERRORS",
            "INPUT",
            "OUTPUT",
            "CACHED",
            "COST (USD)",
            "UNPRICED",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    lines.push(head);
    for r in rows {
        let mut l = Vec::new();
        if series {
            l.push(r.bucket_start.map(format_time).unwrap_or_default());
        }
        l.push(if r.key.is_empty() {
            "-".into()
        } else {
            r.key.clone()
        });
        l.extend([
            r.requests.to_string(),
            r.errors.to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            r.cached_input_tokens.to_string(),
            format!("{:.6}", r.cost),
            r.unpriced.to_string(),
        ]);
        lines.push(l);
    }
    let cols = lines.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
