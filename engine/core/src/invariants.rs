//! The invariants of the margin model, checked over a whole state: value conserved exactly,
//! sizes summing to zero, funding pools solvent, every breached bucket in liquidation, and the
//! derived indices in step with the accounts. Tests run it after every event; the audit tool
//! runs it over a whole history.

use crate::account::Slot;
use crate::health::Overlay;
use crate::ids::{AssetId, MarketId};
use crate::num::Exact;
use crate::ordered::OrderedSet;
use crate::state::State;

/// Every invariant that fails, as readable lines (empty when all hold).
pub fn check(state: &State) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = state.check_ledger() {
        errors.push(format!("ledger: {e}"));
    }
    let mut recount = state.recounted_ledger();
    let mut running = state.ledger.clone();
    for l in [&mut recount, &mut running] {
        while l.held.last() == Some(&0) {
            l.held.pop();
        }
        while l.net_size.last() == Some(&0) {
            l.net_size.pop();
        }
    }
    if recount != running {
        errors.push(format!(
            "the running ledger {running:?} differs from a recount {recount:?}"
        ));
    }
    conservation(state, &mut errors);
    markets(state, &mut errors);
    buckets(state, &mut errors);
    errors
}

fn conservation(state: &State, errors: &mut Vec<String>) {
    let Some(quote) = state.venue.quote else {
        return;
    };
    for (i, cfg) in state.venue.assets.iter().enumerate() {
        let id = AssetId(i as u16);
        let st = &state.assets[i];
        let mut held: i128 = st.insurance_holding.0;
        for acc in &state.accounts {
            for slot in acc.slots() {
                let b = acc.bucket(slot).expect("slot of the account");
                held += b.balance(id).0;
                if id == quote {
                    held += b.positions.iter().map(|p| p.quote.0).sum::<i128>();
                }
            }
        }
        let mut expected = st.deposited - st.withdrawn;
        if id == quote {
            held += state.insurance.0 + state.fee_pool.0;
            held += state
                .markets
                .iter()
                .map(|m| m.funding_pool.0 + m.own_fund.0)
                .sum::<i128>();
            expected += state.topups;
        }
        if held != expected {
            errors.push(format!(
                "conservation of {}: held {held} native, deposits - withdrawals{} = {expected}",
                cfg.name,
                if id == quote { " + top-ups" } else { "" }
            ));
        }
    }
}

fn markets(state: &State, errors: &mut Vec<String>) {
    for (i, cfg) in state.venue.markets.iter().enumerate() {
        let m = MarketId(i as u16);
        let (mut sum, mut longs, mut owed) = (0i128, 0i128, Exact::ZERO);
        let mut holders = 0usize;
        for acc in &state.accounts {
            for slot in acc.slots() {
                let b = acc.bucket(slot).expect("slot of the account");
                if let Some(p) = b.position(m) {
                    sum += i128::from(p.size.0);
                    longs += i128::from(p.size.0.max(0));
                    holders += 1;
                    if !state.markets[i].holders.contains(&(acc.id, slot)) {
                        errors.push(format!(
                            "{}: bucket of account {} missing from holders",
                            cfg.name, acc.id
                        ));
                    }
                    let side = crate::state::side_index(p.size.signum());
                    if !state.markets[i].sides[side].contains(&(acc.id, slot)) {
                        errors.push(format!(
                            "{}: bucket of account {} missing from its side's holders",
                            cfg.name, acc.id
                        ));
                    }
                    match state.funding_owed(p).and_then(|g| owed.plus(g)) {
                        Ok(v) => owed = v,
                        Err(_) => errors.push(format!("{}: funding owed overflows", cfg.name)),
                    }
                }
            }
        }
        if sum != 0 {
            errors.push(format!("{}: sizes sum to {sum} lots, not zero", cfg.name));
        }
        if longs != state.markets[i].open_interest {
            errors.push(format!(
                "{}: open interest {} but longs sum to {longs}",
                cfg.name, state.markets[i].open_interest
            ));
        }
        let by_side: usize = state.markets[i].sides.iter().map(OrderedSet::len).sum();
        if by_side != holders {
            errors.push(format!(
                "{}: {by_side} holders indexed by side, {holders} positions",
                cfg.name
            ));
        }
        if holders != state.markets[i].holders.len() {
            errors.push(format!(
                "{}: {} holders indexed, {holders} positions",
                cfg.name,
                state.markets[i].holders.len()
            ));
        }
        let pool = Exact::new(state.markets[i].funding_pool.0, state.quote_decimals());
        if pool.plus(owed).map(|v| v.is_negative()).unwrap_or(true) {
            errors.push(format!(
                "{}: funding pool plus what positions owe is negative",
                cfg.name
            ));
        }
    }
}

fn buckets(state: &State, errors: &mut Vec<String>) {
    for acc in &state.accounts {
        for slot in acc.slots() {
            let b = acc.bucket(slot).expect("slot of the account");
            if b.is_liquidating() != state.liquidating.contains(&(acc.id, slot)) {
                errors.push(format!(
                    "account {} {:?}: liquidating flag and set disagree",
                    acc.id, slot
                ));
            }
            if b.positions.iter().any(|p| p.size.is_zero()) {
                errors.push(format!(
                    "account {} {:?}: a zero-size position is stored",
                    acc.id, slot
                ));
            }
            if let Slot::Isolated(m) = slot {
                if b.positions.iter().any(|p| p.market != m)
                    || b.balances
                        .iter()
                        .enumerate()
                        .any(|(i, v)| v.0 != 0 && Some(AssetId(i as u16)) != state.venue.quote)
                {
                    errors.push(format!(
                        "account {}: isolated bucket holds more than its market and quote",
                        acc.id
                    ));
                }
            }
            match state.bucket_health(b, &Overlay::default()) {
                Ok(h)
                    if b.has_positions()
                        && h.health_maint() < 0
                        && !b.is_liquidating()
                        && !state.liquidation_deferred(b) =>
                {
                    errors.push(format!(
                        "account {} {:?}: health_maint {} < 0 but not in liquidation",
                        acc.id,
                        slot,
                        h.health_maint()
                    ));
                }
                Ok(h) if !b.has_positions() && h.equity_maint < 0 => {
                    errors.push(format!(
                        "account {} {:?}: no position and negative equity {}",
                        acc.id, slot, h.equity_maint
                    ));
                }
                Err(_) => errors.push(format!(
                    "account {} {:?}: valuation overflows",
                    acc.id, slot
                )),
                _ => {}
            }
            portfolio_bucket(state, acc.id, slot, b, errors);
        }
        for o in &acc.orders {
            let b = acc.bucket_for(o.market);
            if b.order_sums(o.market).count == 0 {
                errors.push(format!(
                    "account {}: order {} missing from its bucket's sums",
                    acc.id, o.id
                ));
            }
        }
    }
}

/// A portfolio bucket's figures are ordered: IM >= ceil(im_factor × MM) >= LE >= MM >= FL >= 0,
/// with IM = ceil(im_factor × MM) when it has no open order; only cross buckets are portfolio.
fn portfolio_bucket(
    state: &State,
    account: crate::ids::AccountId,
    slot: Slot,
    b: &crate::account::Bucket,
    errors: &mut Vec<String>,
) {
    if b.portfolio && slot != Slot::Cross {
        errors.push(format!(
            "account {account} {slot:?}: an isolated bucket is portfolio"
        ));
    }
    let Some(set) = state.portfolio_set(b, &Overlay::default()) else {
        return;
    };
    let qd = state.quote_decimals();
    let figures = state.portfolio_figures(set, b, &Overlay::default(), true);
    let scaled = figures.and_then(|f| {
        let im_mm = Exact::new(f.mm, qd)
            .times(set.im_factor.exact())?
            .ceil(qd)?;
        Ok((f, im_mm))
    });
    let Ok((f, im_mm)) = scaled else {
        errors.push(format!("account {account}: portfolio valuation overflows"));
        return;
    };
    let ordered = f.im >= im_mm && im_mm >= f.le && f.le >= f.mm && f.mm >= f.floor && f.floor >= 0;
    let no_orders_exact = !b.orders.is_empty() || f.im == im_mm;
    if !ordered || !no_orders_exact {
        errors.push(format!(
            "account {account}: portfolio figures out of order: IM {} ceil(im_factor x MM) {im_mm} LE {} MM {} FL {} (open orders: {})",
            f.im,
            f.le,
            f.mm,
            f.floor,
            b.orders.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::num::Native;

    #[test]
    fn value_created_outside_the_primitives_is_caught() {
        let mut e = crate::engine::example_engine(200);
        assert!(super::check(&e.state).is_empty());
        // A bug that credits a balance without debiting anything.
        let b = &mut e.state.accounts[3].cross.balances[0];
        *b = Native(b.0 + 1);
        let errors = super::check(&e.state);
        assert!(
            errors.iter().any(|x| x.starts_with("conservation of USDC")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|x| x.contains("differs from a recount")),
            "{errors:?}"
        );
    }
}
