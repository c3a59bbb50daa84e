//! Values in real processes (issue 7): random bytes of every length up to the
//! 128 KiB that `execve` allows for one environment string go through the
//! library byte-exact, as `sh` and a C program see them; and normalization
//! never makes a value too long to pass on to the next `execve`.

use std::time::Instant;
use support::allocconf_model as model;
use support::probes;
use support::probes::{Probe, SPECIFIC};

/// MAX_ARG_STRLEN: one environment string, `NAME=value` and its NUL.
const MAX_ARG_STRLEN: usize = 131_072;
/// The longest value of the allocator variable that execve accepts.
const ROOM: usize = MAX_ARG_STRLEN - SPECIFIC.len() - 2;

/// Reproducible pseudo-random bytes without NUL (xorshift64*).
fn noise(len: usize, mut state: u64, alphabet: &dyn Fn(u8) -> u8) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            alphabet((state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8)
        })
        .collect()
}

/// Values of many shapes and sizes, the largest exactly at the limit.
fn values() -> Vec<(String, Vec<u8>)> {
    let any = |b: u8| if b == 0 { 1 } else { b };
    let config = |b: u8| b"page_size:1g, \t\n\r\x0b\x0c,:[]\xff"[usize::from(b) % 17];
    let mut out = Vec::new();
    for (i, len) in [1usize, 7, 200, 4096, 65_536, 131_000, ROOM - 26, ROOM].into_iter().enumerate() {
        out.push((format!("{len} random bytes"), noise(len, 0x1234 + i as u64, &any)));
        out.push((format!("{len} bytes of config soup"), noise(len, 0x9999 + i as u64, &config)));
        // Valid under the newer tokenizer: a key, then whitespace of every kind.
        let mut padded = b"page_size:1g".to_vec();
        padded.extend(noise(len.saturating_sub(12), 7 + i as u64, &|b| b" \t\n\r\x0b\x0c"[usize::from(b) % 6]));
        out.push((format!("{len} bytes valid, padded"), padded));
    }
    out
}

#[test]
fn values_up_to_the_exec_limit_pass_through_byte_exact() {
    let start = Instant::now();
    let mut runs = 0;
    for (what, value) in values() {
        let want = match model::normalize(Some(&value)) {
            model::Outcome::Unchanged => value.clone(),
            model::Outcome::Set(v) => v,
        };
        for probe in [Probe::Shell, Probe::C] {
            let mut command = probe.command(true, &[]);
            probes::env_bytes(&mut command, SPECIFIC, &value);
            let seen = probes::run(&mut command);
            let got = seen.view().specific.as_deref().expect("still set");
            // A value the pair would push over the limit may also be left
            // alone (a_value_near_the_exec_limit_can_still_be_passed_on).
            let exact = got == want.as_slice() || (want.len() > ROOM && got == value.as_slice());
            assert!(exact, "{what} via {probe:?}: {} bytes seen, {} expected", got.len(), want.len());
            runs += 1;
        }
    }
    println!(
        "reliability figure: {runs} processes given values of 1 byte to {ROOM} bytes (the execve limit): byte-exact, {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

/// A value that fits execve must still fit after normalization: otherwise
/// every `execve` the process makes afterwards fails with E2BIG (a job
/// launcher that spawns its workers could no longer start them).
#[test]
fn a_value_near_the_exec_limit_can_still_be_passed_on() {
    let mut value = b"page_size:1g".to_vec();
    value.resize(ROOM - 10, b' ');
    let probe = probes::getenv_probe();
    // Without the library: the chain of two execs works.
    let mut command = support::clean_command(&probe);
    command.arg("--then").arg(&probe);
    probes::env_bytes(&mut command, SPECIFIC, &value);
    assert_eq!(probes::run(&mut command).views.len(), 2, "the chain works without the library");
    // With it: the second program must start too.
    let mut command = support::preloaded(&probe);
    command.arg("--then").arg(&probe);
    probes::env_bytes(&mut command, SPECIFIC, &value);
    let output = support::run_with_timeout(&mut command, support::LIMIT);
    assert!(
        output.status.success(),
        "the process cannot exec any more after normalization: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
