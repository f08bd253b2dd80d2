//! The documentation in the repository stands on its own: no page points to a specification
//! outside it, and the pages the README and the docs name exist.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn pages() -> Vec<(PathBuf, String)> {
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

#[test]
fn no_page_points_outside_the_repository() {
    let pages = pages();
    assert!(pages.len() >= 8, "README and the docs/ pages");
    for (path, text) in &pages {
        for outside in ["shared/spec", "../shared", "shared/conformance"] {
            assert!(
                !text.contains(outside),
                "{} points outside the repository ({outside})",
                path.display()
            );
        }
    }
}

#[test]
fn the_docs_pages_named_exist() {
    for (path, text) in pages() {
        for (at, _) in text.match_indices("docs/") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/._-".contains(*c))
                .collect();
            let name = name.trim_end_matches('.');
            if name.ends_with(".md") {
                assert!(
                    root().join(name).exists(),
                    "{} names {name}, which does not exist",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn the_contract_and_the_model_say_it_in_full() {
    let contract = std::fs::read_to_string(root().join("docs/contract.md")).unwrap();
    let model = std::fs::read_to_string(root().join("docs/margin-model.md")).unwrap();
    // Every reason code of the engine is documented in the contract.
    for reason in margin_engine::record::Reason::ALL {
        let code = format!("`{}`", reason.code());
        assert!(contract.contains(&code), "contract lacks {code}");
    }
    // The rules a reader needs to recompute a figure are in the model page itself.
    for rule in [
        "q_closed = trunc(q0 x closed / |s0|)",
        "d = min(d_max, d_start + (d_max - d_start) x elapsed / liq_auction_us)",
        "C = min(-E, max(0, V))",
        "upnl / max(equity_maint",
        "x_need",
        "pays ceil(g)",
        "`MM = max(FL, WL_1, ..., WL_J)`",
        "`IM = ceil(φ_I x MM°) + X`",
        "`δ_jm = min(0, δ_jm(bid), δ_jm(ask))`",
        "`c_jk = floor(b/10^d x P x w x r_jk)`",
        "x_pk",
    ] {
        assert!(model.contains(rule), "margin-model.md lacks `{rule}`");
    }
}
