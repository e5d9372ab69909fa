//! The instruction-count regression gate: reads the callgrind dumps of a
//! driver run (one dump per phase, see [`crate::driver`]) and compares the
//! gateway's instructions per request with `bench/callgrind-baseline.json`.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Instructions of one driver run, per phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunCounts {
    pub startup_and_warmup: u64,
    pub direct_phase: u64,
    pub gateway_phase: u64,
    /// Gateway phase minus direct phase, per request: what the gateway adds.
    pub gateway_per_request: f64,
    pub direct_per_request: f64,
    pub via_gateway_per_request: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    /// The gated figure: instructions the gateway adds per request of the mix.
    pub gateway_instructions_per_request: f64,
    pub requests_per_phase: usize,
    pub mix: Vec<String>,
    pub tolerance: f64,
    pub runs: Vec<RunCounts>,
    pub note: String,
}

fn total_of(path: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    for key in ["summary:", "totals:"] {
        if let Some(line) = text.lines().find(|l| l.starts_with(key)) {
            let n = line[key.len()..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .parse::<u64>()
                .with_context(|| format!("bad `{key}` line in {}", path.display()))?;
            return Ok(n);
        }
    }
    bail!("no summary/totals line in {}", path.display())
}

/// Counts of the run whose `--callgrind-out-file` was `prefix`: dumps
/// `prefix.1` (start-up + warm-up), `prefix.2` (direct), `prefix.3`
/// (through the gateway).
pub fn counts(prefix: &Path, requests: usize) -> anyhow::Result<RunCounts> {
    let part = |k: u32| -> PathBuf {
        let mut s = prefix.as_os_str().to_owned();
        s.push(format!(".{k}"));
        PathBuf::from(s)
    };
    let warm = total_of(&part(1))?;
    let direct = total_of(&part(2))?;
    let gateway = total_of(&part(3))?;
    let n = requests.max(1) as f64;
    Ok(RunCounts {
        startup_and_warmup: warm,
        direct_phase: direct,
        gateway_phase: gateway,
        gateway_per_request: (gateway as f64 - direct as f64) / n,
        direct_per_request: direct as f64 / n,
        via_gateway_per_request: gateway as f64 / n,
    })
}

#[derive(Debug, Serialize)]
struct GateResult {
    pass: bool,
    measured_gateway_instructions_per_request: f64,
    baseline_gateway_instructions_per_request: Option<f64>,
    change: Option<f64>,
    tolerance: f64,
    run_spread: f64,
    runs: Vec<RunCounts>,
}

/// What the runs sent: one `--kind`, or the whole mix.
fn mix_of(kind: Option<usize>) -> Vec<String> {
    match kind {
        Some(k) => vec![crate::driver::kind_name(k).to_string()],
        None => crate::driver::MIX.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn main(
    outs: &[PathBuf],
    baseline_path: &Path,
    requests: usize,
    update: bool,
    tolerance: f64,
    kind: Option<usize>,
    json: Option<&Path>,
) -> anyhow::Result<()> {
    let runs: Vec<RunCounts> = outs
        .iter()
        .map(|p| counts(p, requests))
        .collect::<anyhow::Result<_>>()?;
    let per: Vec<f64> = runs.iter().map(|r| r.gateway_per_request).collect();
    let mean = per.iter().sum::<f64>() / per.len().max(1) as f64;
    let (lo, hi) = per
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let spread = if mean > 0.0 { (hi - lo) / mean } else { 0.0 };
    for (i, r) in runs.iter().enumerate() {
        println!(
            "run {}: gateway adds {:.0} instructions/request (direct {:.0}, via gateway {:.0}; start-up+warm-up {})",
            i + 1,
            r.gateway_per_request,
            r.direct_per_request,
            r.via_gateway_per_request,
            r.startup_and_warmup
        );
    }
    println!(
        "mean {:.0} instructions/request, spread between runs {:.3}%",
        mean,
        spread * 100.0
    );
    if update {
        let b = Baseline {
            gateway_instructions_per_request: mean,
            requests_per_phase: requests,
            mix: mix_of(kind),
            tolerance,
            runs: runs.clone(),
            note: "Instructions the gateway adds per request (callgrind Ir, gateway phase minus direct phase, release build, in-process driver). Update with `scripts/bench.sh gate --update` after an intended change.".into(),
        };
        if let Some(dir) = baseline_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(baseline_path, serde_json::to_string_pretty(&b)? + "\n")?;
        println!("baseline written to {}", baseline_path.display());
        return Ok(());
    }
    let base: Baseline = serde_json::from_str(
        &std::fs::read_to_string(baseline_path)
            .with_context(|| format!("read {}", baseline_path.display()))?,
    )
    .with_context(|| format!("parse {}", baseline_path.display()))?;
    let mix = mix_of(kind);
    if base.mix != mix {
        bail!(
            "{} is the baseline of {:?}, but these runs sent {:?}",
            baseline_path.display(),
            base.mix,
            mix
        );
    }
    let change = mean / base.gateway_instructions_per_request - 1.0;
    let pass = change <= tolerance;
    let result = GateResult {
        pass,
        measured_gateway_instructions_per_request: mean,
        baseline_gateway_instructions_per_request: Some(base.gateway_instructions_per_request),
        change: Some(change),
        tolerance,
        run_spread: spread,
        runs,
    };
    if let Some(j) = json {
        std::fs::write(j, serde_json::to_string_pretty(&result)? + "\n")?;
    }
    println!(
        "baseline {:.0}, measured {:.0}: {:+.2}% (tolerance +{:.0}%)",
        base.gateway_instructions_per_request,
        mean,
        change * 100.0,
        tolerance * 100.0
    );
    if change < -tolerance {
        println!("note: much cheaper than the baseline; consider `scripts/bench.sh gate --update`");
    }
    if !pass {
        bail!(
            "instruction-count gate FAILED: the gateway now costs {:.0} instructions/request, {:+.1}% over the baseline {:.0} (tolerance {:.0}%)",
            mean,
            change * 100.0,
            base.gateway_instructions_per_request,
            tolerance * 100.0
        );
    }
    println!("instruction-count gate passed");
    Ok(())
}
