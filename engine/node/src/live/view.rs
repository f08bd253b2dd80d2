//! The JSON answers of the live view, each computed from one state clone (so every figure of an
//! answer is of the same seq). Money and prices are exact decimal strings, as in the state
//! report; the account answer *is* the state report's account.

use margin_engine::account::{Bucket, Slot};
use margin_engine::ids::{AccountId, AssetId};
use margin_engine::num::{format_scaled, Ticks};
use margin_engine::state::State;
use serde::Serialize;
use serde_json::{json, Value};
use std::cmp::Ordering;

/// Buckets `/api/risk` lists at most.
pub const RISK_LIMIT_MAX: usize = 100;

/// Halvings of the search for a liquidation price (ticks are i64: 64 suffice).
const SEARCH_STEPS: u32 = 64;

/// The seq-consistent figures of the venue: funds, pools, counts and the bad debt the fund
/// would face if every bucket under water were closed now.
pub fn summary(state: &State) -> Value {
    let qd = state.quote_decimals();
    let q = |v: i128| format_scaled(v, qd);
    let mut buckets = 0u64;
    let mut with_positions = 0u64;
    let mut under_maint = 0u64;
    let mut exposure: i128 = 0;
    let portfolio = state.accounts.iter().filter(|a| a.cross.portfolio).count();
    for acc in &state.accounts {
        for slot in acc.slots() {
            let Some(b) = acc.bucket(slot) else { continue };
            buckets += 1;
            if !b.has_positions() {
                continue;
            }
            with_positions += 1;
            if let Ok(h) = state.bucket_maint(b) {
                if h.health_maint() < 0 {
                    under_maint += 1;
                }
                if h.equity_maint < 0 {
                    exposure = exposure.saturating_add(-h.equity_maint);
                }
            }
        }
    }
    let fund = state.insurance.0;
    json!({
        "seq": state.input_seq,
        "ts": state.clock_us,
        "output_seq": state.output_seq,
        "state_hash": margin_engine::persist::hex(&margin_engine::persist::state_hash(state)),
        "insurance_fund": q(fund),
        "fee_pool": q(state.fee_pool.0),
        "accounts": state.accounts.len(),
        "buckets": buckets,
        "buckets_with_positions": with_positions,
        "buckets_under_maintenance": under_maint,
        "buckets_liquidating": state.liquidating.len(),
        "bad_debt_exposure": q(exposure),
        "fund_coverage": coverage(fund, exposure),
        "portfolio_accounts": portfolio,
        "risk_scenarios": state.venue.risk.as_ref().map(|s| json!({
            "name": s.name.as_str(),
            "version": s.version,
            "scenarios": s.scenarios.len(),
        })),
    })
}

/// fund / exposure with 4 places, rounded down ("none" without exposure).
fn coverage(fund: i128, exposure: i128) -> String {
    if exposure <= 0 {
        return "none".into();
    }
    ratio_text(fund, exposure)
}

/// Every market: index, open interest, funding index, pools.
pub fn markets(state: &State) -> Value {
    let report = match state.report(Some(AccountId(u64::MAX))) {
        Ok(r) => r,
        Err(_) => return json!({"error": "the state report overflows"}),
    };
    let mut out = Vec::new();
    for (i, m) in state.venue.markets.iter().enumerate() {
        let name = m.name.to_string();
        let base = state.venue.asset(m.base);
        let st = &state.markets[i];
        out.push(json!({
            "market": name,
            "base": base.name.to_string(),
            "index": state.assets[m.base.index()]
                .oracle
                .index
                .map(|t| format_scaled(i128::from(t.0), base.price_scale)),
            "open_interest": format_scaled(st.open_interest, m.size_decimals),
            "funding_index": report.markets.get(&name).map(|r| r.funding_index.clone()),
            "funding_pool": report.funding_pools.get(&name).cloned(),
            "holders": st.holders.len(),
        }));
    }
    Value::Array(out)
}

/// The state report's entry of one account.
pub fn account(state: &State, id: u64) -> Option<Value> {
    state.account(AccountId(id))?;
    let report = state.report(Some(AccountId(id))).ok()?;
    let acc = report.accounts.into_iter().next()?;
    let mut v = serde_json::to_value(acc).ok()?;
    if let Value::Object(m) = &mut v {
        m.insert("seq".into(), json!(report.seq));
    }
    Some(v)
}

/// One bucket's place in the risk list.
#[derive(Serialize)]
struct RiskRow {
    account: u64,
    bucket: String,
    equity_maint: String,
    mm: String,
    health_maint: String,
    /// equity_maint / mm, 4 places, rounded down.
    health_ratio: String,
    liquidating: bool,
    /// A portfolio bucket's scenario with the largest weighted loss (absent for a standard
    /// bucket; null when no scenario loses and the floor binds) and that loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    portfolio: Option<PortfolioRow>,
    /// Per driving asset: the index price at which the bucket's maintenance health would turn
    /// negative, the other prices held ("breached": it is negative now; None: no such price
    /// within 1 tick..100x the index).
    liquidation_prices: std::collections::BTreeMap<String, Option<String>>,
}

/// What binds a portfolio bucket.
#[derive(Serialize)]
struct PortfolioRow {
    worst_scenario: Option<String>,
    worst_loss: String,
    floor: String,
}

fn portfolio_row(state: &State, b: &Bucket) -> Option<PortfolioRow> {
    let none = margin_engine::health::Overlay::default();
    let set = state.portfolio_set(b, &none)?;
    let f = state.portfolio_figures(set, b, &none, false).ok()?;
    let qd = state.quote_decimals();
    Some(PortfolioRow {
        worst_scenario: set.scenario_name(f.worst),
        worst_loss: format_scaled(f.worst_loss, qd),
        floor: format_scaled(f.floor, qd),
    })
}

/// The `limit` buckets with positions nearest liquidation (lowest equity_maint / mm first),
/// with their liquidation prices. Takes the view's own copy: prices are moved on it while
/// searching and put back.
pub fn risk(state: &mut State, limit: usize) -> Value {
    let qd = state.quote_decimals();
    // (equity_maint, mm, account, slot), mm > 0.
    let mut rows: Vec<(i128, i128, AccountId, Slot)> = Vec::new();
    for acc in &state.accounts {
        for slot in acc.slots() {
            let Some(b) = acc.bucket(slot) else { continue };
            if !b.has_positions() {
                continue;
            }
            if let Ok(h) = state.bucket_maint(b) {
                if h.mm > 0 {
                    rows.push((h.equity_maint, h.mm, acc.id, slot));
                }
            }
        }
    }
    // Lowest ratio first, exactly (cross-multiplied; mm > 0), then by bucket.
    rows.sort_by(|a, b| match ratio_cmp(a.0, a.1, b.0, b.1) {
        Ordering::Equal => (a.2, a.3).cmp(&(b.2, b.3)),
        o => o,
    });
    rows.truncate(limit.min(RISK_LIMIT_MAX));
    let mut out = Vec::new();
    for (e, mm, id, slot) in rows {
        let liquidation_prices = liquidation_prices(state, id, slot);
        let bucket = match slot {
            Slot::Cross => "cross".to_string(),
            Slot::Isolated(m) => state.venue.market(m).name.to_string(),
        };
        let liquidating = state.bucket(id, slot).is_some_and(|b| b.is_liquidating());
        let portfolio = state.bucket(id, slot).and_then(|b| portfolio_row(state, b));
        out.push(RiskRow {
            account: id.0,
            bucket,
            equity_maint: format_scaled(e, qd),
            mm: format_scaled(mm, qd),
            health_maint: format_scaled(e - mm, qd),
            health_ratio: ratio_text(e, mm),
            liquidating,
            portfolio,
            liquidation_prices,
        });
    }
    serde_json::to_value(out).unwrap_or(Value::Null)
}

fn ratio_cmp(e1: i128, m1: i128, e2: i128, m2: i128) -> Ordering {
    use ethnum::I256;
    (I256::from(e1) * I256::from(m2)).cmp(&(I256::from(e2) * I256::from(m1)))
}

/// num / den (den > 0) with 4 places, rounded down.
fn ratio_text(num: i128, den: i128) -> String {
    match num.checked_mul(10_000) {
        Some(x) => format_scaled(x.div_euclid(den), 4),
        None => "large".into(),
    }
}

/// The assets whose price moves the bucket: its positions' bases and its non-quote balances.
fn driving_assets(state: &State, b: &Bucket) -> Vec<AssetId> {
    let mut assets: Vec<AssetId> = b
        .positions
        .iter()
        .map(|p| state.venue.market(p.market).base)
        .chain(b.non_quote_assets(state.quote()).map(|(a, _)| a))
        .collect();
    assets.sort();
    assets.dedup();
    assets
}

fn liquidation_prices(
    state: &mut State,
    id: AccountId,
    slot: Slot,
) -> std::collections::BTreeMap<String, Option<String>> {
    let mut out = std::collections::BTreeMap::new();
    let Some(assets) = state.bucket(id, slot).map(|b| driving_assets(state, b)) else {
        return out;
    };
    for asset in assets {
        let cfg = state.venue.asset(asset);
        let (name, scale) = (cfg.name.to_string(), cfg.price_scale);
        let price = match liquidation_price(state, id, slot, asset) {
            Some(Crossing::Breached) => Some("breached".to_string()),
            Some(Crossing::At(t)) => Some(format_scaled(i128::from(t), scale)),
            None => None,
        };
        out.insert(name, price);
    }
    out
}

/// Where a bucket's maintenance health turns negative along one asset's price.
enum Crossing {
    /// It is negative already, at the index now.
    Breached,
    At(i64),
}

/// The index of `asset` nearest the current one at which the bucket's maintenance health turns
/// negative, searching in the direction that lowers it (health is taken as monotone between
/// the index and the end of the range, 1 tick or 100x).
fn liquidation_price(
    state: &mut State,
    id: AccountId,
    slot: Slot,
    asset: AssetId,
) -> Option<Crossing> {
    let now = state.index(asset)?;
    let health_at = |state: &mut State, ticks: i64| -> Option<i128> {
        state.assets[asset.index()].oracle.index = Some(Ticks(ticks));
        let h = state.bucket(id, slot).map(|b| state.bucket_maint(b));
        state.assets[asset.index()].oracle.index = Some(Ticks(now));
        h?.ok().map(|h| h.health_maint())
    };
    let here = health_at(state, now)?;
    if here < 0 {
        return Some(Crossing::Breached);
    }
    let step = (now / 100).max(1);
    let down = health_at(state, (now - step).max(1))?;
    let up = health_at(state, now.saturating_add(step))?;
    let end = if down <= up {
        1
    } else {
        now.saturating_mul(100)
    };
    if health_at(state, end)? >= 0 {
        return None;
    }
    // Invariant: health >= 0 at `good`, < 0 at `bad`.
    let (mut good, mut bad) = (now, end);
    for _ in 0..SEARCH_STEPS {
        if (good - bad).abs() <= 1 {
            break;
        }
        let mid = good + (bad - good) / 2;
        if health_at(state, mid)? >= 0 {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Some(Crossing::At(bad))
}

/// Buckets in liquidation now (with when it started) and the recent liquidation records.
pub fn liquidations(state: &State, recent: Vec<super::RecentRecord>) -> Value {
    let mut in_progress = Vec::new();
    state.liquidating.for_each(|&(id, slot)| {
        let started = state
            .bucket(id, slot)
            .and_then(|b| b.liquidation)
            .map(|l| l.started_us);
        in_progress.push(json!({
            "account": id.0,
            "bucket": match slot {
                Slot::Cross => "cross".to_string(),
                Slot::Isolated(m) => state.venue.market(m).name.to_string(),
            },
            "started_us": started,
        }));
    });
    json!({
        "seq": state.input_seq,
        "in_progress": in_progress,
        "recent": recent,
    })
}

/// What `/metrics` shows of the state view.
pub struct StateMetrics {
    pub seq: u64,
    pub liquidating: u64,
    /// (asset, amount): the quote fund and the assets it holds.
    pub insurance: Vec<(String, String)>,
    pub fee_pool: String,
    pub open_interest: Vec<(String, String)>,
    pub funding_index: Vec<(String, String)>,
}

pub fn state_metrics(state: &State) -> StateMetrics {
    let qd = state.quote_decimals();
    let quote = state
        .venue
        .quote
        .map_or_else(String::new, |q| state.venue.asset(q).name.to_string());
    let mut insurance = vec![(quote, format_scaled(state.insurance.0, qd))];
    let mut open_interest = Vec::new();
    let mut funding_index = Vec::new();
    if let Ok(r) = state.report(Some(AccountId(u64::MAX))) {
        insurance.extend(r.insurance_assets);
        for (name, m) in r.markets {
            open_interest.push((name.clone(), m.open_interest));
            funding_index.push((name, m.funding_index));
        }
    }
    StateMetrics {
        seq: state.input_seq,
        liquidating: state.liquidating.len() as u64,
        insurance,
        fee_pool: format_scaled(state.fee_pool.0, qd),
        open_interest,
        funding_index,
    }
}

/// The state the HTTP threads answer from: the newest clone the sequencer handed over whose
/// seq the publisher has released (a newer one waits in `pending` until it is).
pub struct StateView {
    rx: crossbeam_channel::Receiver<Box<State>>,
    pending: std::sync::Mutex<Option<Box<State>>>,
    current: std::sync::Mutex<Option<Box<State>>>,
    /// Answers computed from the current view, by request (cleared when the view moves): a
    /// dashboard polling faster than the view refreshes costs one computation per refresh.
    answers: std::sync::Mutex<std::collections::BTreeMap<String, Value>>,
}

impl StateView {
    pub fn new(rx: crossbeam_channel::Receiver<Box<State>>) -> StateView {
        StateView {
            rx,
            pending: std::sync::Mutex::new(None),
            current: std::sync::Mutex::new(None),
            answers: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// Takes in what the sequencer sent and promotes what is published.
    pub fn refresh(&self, published_seq: u64) {
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        while let Ok(mut s) = self.rx.try_recv() {
            // The view moves prices on its copy (liquidation prices): no memoized sums.
            s.plain_valuation = true;
            *pending = Some(s);
        }
        if pending
            .as_ref()
            .is_some_and(|s| s.input_seq <= published_seq)
        {
            if let Ok(mut current) = self.current.lock() {
                *current = pending.take();
                if let Ok(mut answers) = self.answers.lock() {
                    answers.clear();
                }
            }
        }
    }

    /// The answer to `key` from the current view: remembered, or computed by `f` (and
    /// remembered when it is not an error). None before the first view.
    pub fn answer<E>(
        &self,
        key: &str,
        f: impl FnOnce(&mut State) -> Result<Value, E>,
    ) -> Option<Result<Value, E>> {
        let mut current = self.current.lock().ok()?;
        let state = current.as_mut()?;
        if let Some(v) = self.answers.lock().ok()?.get(key) {
            return Some(Ok(v.clone()));
        }
        let v = f(state);
        if let (Ok(v), Ok(mut answers)) = (&v, self.answers.lock()) {
            answers.insert(key.to_string(), v.clone());
        }
        Some(v)
    }

    /// Runs `f` on the current view (None before the first one).
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> Option<R> {
        let mut current = self.current.lock().ok()?;
        current.as_mut().map(|s| f(s))
    }
}
