//! `cargo bench --bench overhead`: the library's cost, as ratios against the
//! same work without it, printed as a Markdown table (and saved to
//! target/bench-summary.md). The measurements are `support::overhead`
//! (crates/testkit/src/overhead.rs), shared with tests/bench_smoke.rs.

use support::overhead as measure;

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters nothing here.
    let rows = measure::run_all(measure::Settings::FULL);
    let table = measure::table(&rows);
    let machine = machine();
    println!("\n{machine}\n\n{table}");
    let out = support::target_dir().join("bench-summary.md");
    let _ = std::fs::write(&out, format!("{machine}\n\n{table}"));
    println!("(saved to {})", out.display());
}

/// The machine the numbers come from.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("Machine: {cpu}, {cores} cores, Linux {}", kernel.trim())
}
