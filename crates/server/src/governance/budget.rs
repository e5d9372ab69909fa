//! Budgets: an in-memory ledger per budget and period, with atomic
//! reserve-then-settle so concurrent requests can never overspend.
//!
//! Before forwarding, a request reserves its worst-case cost and tokens
//! (prompt estimate × input price + max output × output price) against every
//! budget that applies to it (tenant, user, key) — all or nothing, under one
//! lock. After the response, the reservation is replaced by the real cost.
//! `spent + reserved` never exceeds the limit, so the recorded total never
//! does either. Exact on one replica; across replicas the ledger must move to
//! a shared store (documented limitation).

use crate::error::GatewayError;
use crate::store::{Budget, BudgetAction, Millis};
use crate::FastMap;
use std::sync::{Arc, Mutex};
use switchyard_core::ir::{ApiError, ErrorKind};

/// A request whose worst-case cost cannot be computed: a deployment it may
/// reach (its alias's, a fallback's) has no known price. Under a cost budget
/// it fails closed (refused, see [`Unpriced::refusal`]) unless
/// `governance.unpriced: allow`.
#[derive(Debug, Clone)]
pub struct Unpriced {
    /// The configured provider name (`providers.NAME`).
    pub provider: String,
    /// The upstream model name.
    pub model: String,
}

impl Unpriced {
    /// The 403 `model_price_unknown` refusal under `budget`, naming the model
    /// and the ways to price it.
    pub fn refusal(&self, budget: &Budget) -> GatewayError {
        let (p, m) = (&self.provider, &self.model);
        let mut e = ApiError::new(
            ErrorKind::PermissionDenied,
            format!(
                "The price of model `{m}` (provider `{p}`) is unknown, and the {} budget `{}` limits cost, so the request is refused rather than run unmetered. To price it, add `price: {{input: …, output: …}}` (USD per 1M tokens) to its deployment in the config, or set `providers.{p}.default_price`; or set `governance.unpriced: allow` to admit unpriced models at cost 0 (usage rows flagged `unpriced`).",
                budget.scope.as_str(),
                budget.id,
            ),
        )
        .with_code("model_price_unknown");
        e.param = Some("model".into());
        GatewayError::new(403, e)
    }
}

/// One budget's running totals for its current period.
#[derive(Debug, Clone)]
struct Account {
    budget: Arc<Budget>,
    period_start: Millis,
    period_end: Millis,
    spent_cost: f64,
    spent_tokens: i64,
    reserved_cost: f64,
    reserved_tokens: i64,
}

/// A reservation against one budget, to be settled exactly once.
#[derive(Debug, Clone)]
pub struct Hold {
    pub budget_id: String,
    pub period_start: Millis,
    pub cost: f64,
    pub tokens: i64,
}

/// Why a reservation was refused.
#[derive(Debug, Clone)]
pub struct Exhausted {
    pub budget: Arc<Budget>,
    pub spent_cost: f64,
    pub spent_tokens: i64,
}

/// A threshold crossed by a settlement (fires once per budget, period and
/// threshold; the store de-duplicates across restarts).
#[derive(Debug, Clone, PartialEq)]
pub struct Crossing {
    pub budget_id: String,
    pub scope: String,
    pub scope_id: String,
    pub period_start: Millis,
    pub threshold: f64,
    pub spent_cost: f64,
    pub spent_tokens: i64,
}

/// All accounts.
#[derive(Debug, Default)]
pub struct Ledger {
    accounts: Mutex<FastMap<String, Account>>,
}

impl Ledger {
    /// Install or update a budget with what was already spent in its current
    /// period (from the usage table).
    pub fn load(&self, budget: Arc<Budget>, spent_cost: f64, spent_tokens: i64, now: Millis) {
        let (start, end) = period_bounds(&budget, now);
        let mut map = self.lock();
        match map.get_mut(&budget.id) {
            Some(a) if a.period_start == start => a.budget = budget,
            _ => {
                map.insert(
                    budget.id.clone(),
                    Account {
                        budget,
                        period_start: start,
                        period_end: end,
                        spent_cost,
                        spent_tokens,
                        reserved_cost: 0.0,
                        reserved_tokens: 0,
                    },
                );
            }
        }
    }

    pub fn remove(&self, budget_id: &str) {
        self.lock().remove(budget_id);
    }

    pub fn contains(&self, budget_id: &str) -> bool {
        self.lock().contains_key(budget_id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FastMap<String, Account>> {
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserve against every listed budget, or none. Budgets whose action is
    /// `downgrade` never refuse: they are reported as exhausted through
    /// `downgrade` so the caller can switch models, and still account spend.
    pub fn reserve(
        &self,
        budget_ids: &[String],
        cost: f64,
        tokens: i64,
        now: Millis,
    ) -> Result<Reservation, Exhausted> {
        let mut map = self.lock();
        let mut downgrade = None;
        for id in budget_ids {
            let Some(a) = map.get_mut(id) else { continue };
            roll(a, now);
            let over_cost = a
                .budget
                .max_cost
                .is_some_and(|m| a.spent_cost + a.reserved_cost + cost > m + 1e-12);
            let over_tokens = a
                .budget
                .max_tokens
                .is_some_and(|m| a.spent_tokens + a.reserved_tokens + tokens > m);
            if over_cost || over_tokens {
                let e = Exhausted {
                    budget: a.budget.clone(),
                    spent_cost: a.spent_cost,
                    spent_tokens: a.spent_tokens,
                };
                match a.budget.action {
                    BudgetAction::Block => return Err(e),
                    BudgetAction::Downgrade if a.budget.downgrade_alias.is_some() => {
                        downgrade.get_or_insert(e);
                    }
                    BudgetAction::Downgrade => return Err(e),
                }
            }
        }
        let mut holds = Vec::with_capacity(budget_ids.len());
        for id in budget_ids {
            if let Some(a) = map.get_mut(id) {
                a.reserved_cost += cost;
                a.reserved_tokens += tokens;
                holds.push(Hold {
                    budget_id: id.clone(),
                    period_start: a.period_start,
                    cost,
                    tokens,
                });
            }
        }
        Ok(Reservation { holds, downgrade })
    }

    /// Replace holds with the real spend; returns thresholds crossed.
    pub fn settle(&self, holds: &[Hold], cost: f64, tokens: i64) -> Vec<Crossing> {
        let mut map = self.lock();
        let mut out = Vec::new();
        for h in holds {
            let Some(a) = map.get_mut(&h.budget_id) else {
                continue;
            };
            if a.period_start == h.period_start {
                a.reserved_cost = (a.reserved_cost - h.cost).max(0.0);
                a.reserved_tokens = (a.reserved_tokens - h.tokens).max(0);
            }
            let before = fraction(a);
            a.spent_cost += cost;
            a.spent_tokens += tokens;
            let after = fraction(a);
            for t in &a.budget.alert_thresholds {
                if before < *t && after >= *t {
                    out.push(Crossing {
                        budget_id: a.budget.id.clone(),
                        scope: a.budget.scope.as_str().to_owned(),
                        scope_id: a.budget.scope_id.clone(),
                        period_start: a.period_start,
                        threshold: *t,
                        spent_cost: a.spent_cost,
                        spent_tokens: a.spent_tokens,
                    });
                }
            }
        }
        out
    }

    /// The first of these budgets that limits cost (USD), if any.
    pub fn cost_budget(&self, budget_ids: &[String]) -> Option<Arc<Budget>> {
        let map = self.lock();
        budget_ids
            .iter()
            .filter_map(|id| map.get(id))
            .find(|a| a.budget.max_cost.is_some())
            .map(|a| a.budget.clone())
    }

    /// (spent cost, spent tokens, reserved cost) of a budget, for reports.
    pub fn status(&self, budget_id: &str) -> Option<(f64, i64, f64, Millis, Millis)> {
        self.lock().get(budget_id).map(|a| {
            (
                a.spent_cost,
                a.spent_tokens,
                a.reserved_cost,
                a.period_start,
                a.period_end,
            )
        })
    }
}

/// What `reserve` handed out.
#[derive(Debug, Default)]
pub struct Reservation {
    pub holds: Vec<Hold>,
    /// A downgrade budget is exhausted: route to its `downgrade_alias`.
    pub downgrade: Option<Exhausted>,
}

fn fraction(a: &Account) -> f64 {
    let c = a
        .budget
        .max_cost
        .filter(|m| *m > 0.0)
        .map_or(0.0, |m| a.spent_cost / m);
    let t = a
        .budget
        .max_tokens
        .filter(|m| *m > 0)
        .map_or(0.0, |m| a.spent_tokens as f64 / m as f64);
    c.max(t)
}

/// A new period started: start from zero.
fn roll(a: &mut Account, now: Millis) {
    if now >= a.period_end {
        let (s, e) = period_bounds(&a.budget, now);
        a.period_start = s;
        a.period_end = e;
        a.spent_cost = 0.0;
        a.spent_tokens = 0;
        a.reserved_cost = 0.0;
        a.reserved_tokens = 0;
    }
}

const DAY: i64 = 86_400_000;

/// [start, end) of the budget's period containing `now` (UTC).
pub fn period_bounds(b: &Budget, now: Millis) -> (Millis, Millis) {
    match b.period.as_str() {
        "daily" => {
            let s = now.div_euclid(DAY) * DAY;
            (s, s + DAY)
        }
        "monthly" | "" => month_bounds(now),
        other => match parse_span(other) {
            Some(len) => {
                let k = (now - b.created_at).div_euclid(len);
                let s = b.created_at + k * len;
                (s, s + len)
            }
            None => month_bounds(now),
        },
    }
}

/// `30d`, `12h`, `3600s` → milliseconds.
pub fn parse_span(s: &str) -> Option<i64> {
    if !s.is_ascii() || s.len() < 2 {
        return None;
    }
    let (n, unit) = s.split_at(s.len() - 1);
    if !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
    n.checked_mul(match unit {
        "s" => 1000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    })
}

fn month_bounds(now: Millis) -> (Millis, Millis) {
    let days = now.div_euclid(DAY);
    let (y, m, _) = civil_from_days(days);
    let start = days_from_civil(y, m, 1) * DAY;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (start, days_from_civil(ny, nm, 1) * DAY)
}

// Howard Hinnant's date algorithms (public domain).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Scope;

    fn budget(id: &str, max_cost: Option<f64>, action: BudgetAction) -> Arc<Budget> {
        Arc::new(Budget {
            id: id.into(),
            scope: Scope::Tenant,
            scope_id: "t".into(),
            period: "monthly".into(),
            max_cost,
            max_tokens: None,
            alert_thresholds: vec![0.5, 0.8, 0.95],
            action,
            downgrade_alias: (action == BudgetAction::Downgrade).then(|| "cheap".into()),
            created_at: 0,
            updated_at: 0,
            owner: Default::default(),
        })
    }

    #[test]
    fn months_are_calendar_months() {
        // 2026-11-21T23:43:00Z
        let now = 1_795_304_580_000;
        let (s, e) = month_bounds(now);
        assert_eq!(s, 1_793_491_200_000); // 2026-11-01
        assert_eq!(e, 1_796_083_200_000); // 2026-12-01
        let (s, e) = month_bounds(1_796_083_200_000 + 1);
        assert_eq!((s, e - s), (1_796_083_200_000, 31 * DAY));
        assert_eq!(parse_span("30d"), Some(30 * DAY));
        assert_eq!(parse_span("x"), None);
    }

    #[test]
    fn reservations_never_let_concurrent_requests_overspend() {
        let l = Arc::new(Ledger::default());
        l.load(budget("b", Some(1.0), BudgetAction::Block), 0.0, 0, 1000);
        let ids = vec!["b".to_string()];
        let mut handles = Vec::new();
        for _ in 0..64 {
            let l = l.clone();
            let ids = ids.clone();
            handles.push(std::thread::spawn(move || {
                // Worst case 0.1, real 0.07.
                match l.reserve(&ids, 0.1, 0, 1000) {
                    Ok(r) => {
                        l.settle(&r.holds, 0.07, 0);
                        1
                    }
                    Err(_) => 0,
                }
            }));
        }
        let ok: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let (spent, _, reserved, _, _) = l.status("b").unwrap();
        assert!(spent <= 1.0 + 1e-9, "{spent}");
        assert_eq!(reserved, 0.0);
        assert!(ok >= 10, "{ok}");
    }

    #[test]
    fn thresholds_fire_once_and_downgrade_does_not_block() {
        let l = Ledger::default();
        l.load(budget("b", Some(10.0), BudgetAction::Block), 0.0, 0, 1000);
        let r = l.reserve(&["b".into()], 4.0, 0, 1000).unwrap();
        assert!(l.settle(&r.holds, 4.0, 0).is_empty());
        let r = l.reserve(&["b".into()], 5.0, 0, 1000).unwrap();
        let c = l.settle(&r.holds, 5.0, 0);
        assert_eq!(
            c.iter().map(|c| c.threshold).collect::<Vec<_>>(),
            vec![0.5, 0.8]
        );
        assert!(l.reserve(&["b".into()], 2.0, 0, 1000).is_err());

        l.load(
            budget("d", Some(1.0), BudgetAction::Downgrade),
            1.0,
            0,
            1000,
        );
        let r = l.reserve(&["d".into()], 0.5, 0, 1000).unwrap();
        assert!(r.downgrade.is_some());
    }

    #[test]
    fn cost_budgets_are_found_and_unpriced_refusals_say_how_to_price() {
        let l = Ledger::default();
        let mut tokens_only = (*budget("t", None, BudgetAction::Block)).clone();
        tokens_only.max_tokens = Some(1000);
        l.load(Arc::new(tokens_only), 0.0, 0, 1000);
        assert!(l.cost_budget(&["t".into(), "missing".into()]).is_none());
        l.load(budget("c", Some(1.0), BudgetAction::Block), 0.0, 0, 1000);
        let b = l.cost_budget(&["t".into(), "c".into()]).unwrap();
        assert_eq!(b.id, "c");
        let e = Unpriced {
            provider: "oai".into(),
            model: "ft:acme:x::y".into(),
        }
        .refusal(&b);
        assert_eq!(e.status.as_u16(), 403);
        assert_eq!(e.error.code.as_deref(), Some("model_price_unknown"));
        let m = &e.error.message;
        for part in [
            "`ft:acme:x::y`",
            "`oai`",
            "budget `c`",
            "price:",
            "providers.oai.default_price",
            "governance.unpriced: allow",
        ] {
            assert!(m.contains(part), "{part} not in {m}");
        }
    }

    #[test]
    fn a_new_period_starts_from_zero() {
        let l = Ledger::default();
        l.load(
            budget("b", Some(1.0), BudgetAction::Block),
            1.0,
            0,
            1_795_304_580_000,
        );
        assert!(l.reserve(&["b".into()], 0.1, 0, 1_795_304_580_000).is_err());
        assert!(l.reserve(&["b".into()], 0.1, 0, 1_796_083_200_000).is_ok());
    }
}
