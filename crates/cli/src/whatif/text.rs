//! The terminal report: one row per configuration (and device), the
//! original run's own numbers first, then the verdict.

use super::outcome::{Report, gib, mib, verdict};
use crate::report::units::terminal_safe;
use std::fmt::Write;

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let plan = report.plan;
    let events: usize = plan.devices.iter().map(|d| d.events).sum();
    let steps: usize = plan.devices.iter().map(|d| d.steps.len()).sum();
    let torch_npu = report.runs.first().map_or("?", |r| r.torch_npu.as_str());
    let _ = writeln!(
        out,
        "whatif: {}: {events} events on {} device(s), {steps} allocations and frees replayed\n\
         on torch_npu {torch_npu}'s own allocator, simulated NPU of {} per device",
        terminal_safe(&report.snapshot, 200),
        plan.devices.len(),
        gib(report.device_bytes),
    );
    let multi = plan.devices.len() > 1;
    let _ = writeln!(
        out,
        "\n{:<44} {:<26} {:>14} {:>14} {:>12} {:>10}",
        "configuration", "outcome", "peak reserved", "peak allocated", "max gap", "segments"
    );
    for d in &plan.devices {
        let r = &d.recorded;
        let outcome = match r.oom {
            Some((at, size)) => format!("OOM at #{at} ({})", mib(size)),
            None => "as recorded".into(),
        };
        let name = if multi { format!("recorded trace, dev {}", d.device) } else { "recorded trace".into() };
        let _ = writeln!(
            out,
            "{:<44} {:<26} {:>14} {:>14} {:>12} {:>10}",
            name,
            outcome,
            gib(r.peak_reserved),
            gib(r.peak_allocated),
            "",
            format!("{}/{}", r.segments_peak, r.segments_end)
        );
    }
    for run in &report.runs {
        for d in &run.devices {
            let mut name = super::label(&run.config);
            if multi {
                name = format!("{name}, dev {}", d.device);
            }
            let name = terminal_safe(&name, 44);
            let outcome = match (d.outcome.as_str(), d.oom) {
                ("oom", Some((at, size))) => format!("OOM at #{at} ({})", mib(size)),
                ("completed", _) => "completed".into(),
                ("rejected", _) => "refused by torch_npu".into(),
                (other, _) => other.to_owned(),
            };
            if d.outcome == "rejected" {
                let _ = writeln!(out, "{name:<44} {outcome}: {}", d.error.as_deref().unwrap_or(""));
                continue;
            }
            let _ = writeln!(
                out,
                "{name:<44} {outcome:<26} {:>14} {:>14} {:>12} {:>10}",
                gib(d.peak_reserved),
                gib(d.peak_allocated),
                gib(d.max_gap()),
                format!("{}/{}", d.segments_peak, d.segments_end)
            );
        }
    }
    let roles: Vec<String> = report
        .runs
        .iter()
        .filter(|r| !r.role.is_empty())
        .map(|r| format!("  {}: {}", terminal_safe(&super::label(&r.config), 80), r.role))
        .collect();
    if !roles.is_empty() {
        let _ = writeln!(out, "\nconfigurations tried (none given):\n{}", roles.join("\n"));
    }
    let _ = writeln!(
        out,
        "\nrecorded trace: reconstructed from the snapshot's segment and alloc events (its allocated\n\
         column is the requested bytes; replays count the allocator's rounded blocks)\n\
         max gap: the largest reserved-minus-allocated sampled (held by the cache, not in use)\n\
         segments: peak/end (expandable segments show 0: they map pages into one reserved range)"
    );
    // A configuration read from the snapshot may appear here: no escape sequences.
    let _ = writeln!(out, "\nverdict: {}", terminal_safe(&verdict(report), 4000));
    out
}
