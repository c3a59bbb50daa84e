//! Runs every benchmark of `cargo bench --bench overhead` for a few
//! iterations, so the benchmarks keep working; times are not judged here.

use support::overhead as measure;

#[test]
fn every_benchmark_runs_and_reports_numbers() {
    let rows = measure::run_all(measure::Settings::QUICK);
    assert!(rows.len() >= 8, "{}", measure::table(&rows));
    for row in &rows {
        assert!(row.with.is_finite() && row.with > 0.0, "{}: {}", row.what, row.with);
    }
    let table = measure::table(&rows);
    assert!(table.contains("tracing off") && table.contains("process start") && table.contains("live allocations"));
    assert!(table.contains("cudaMalloc/cudaFree pair"), "{table}");
    assert!(table.contains("fork of an idle traced process"), "{table}");
}
