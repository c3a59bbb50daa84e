//! Chrome trace-event JSON (the format Perfetto, chrome://tracing and the
//! PyTorch profiler read): per process a `process_name`, counter tracks of
//! live device memory (named after the device when the process used one),
//! and an instant event per failed allocation. Times are microseconds since
//! the first process started.

use super::merge::Merged;
use super::units::{bytes, device};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{self, Write};

/// Trace pids for processes whose pid another host (or an earlier run) also
/// used start here: a trace needs one pid per track group.
const SYNTHETIC_PID: u64 = 100_000_000;

fn us(ms: u64) -> u64 {
    ms.saturating_mul(1000)
}

/// Assigns trace pids: the real pid when it is unique in the set.
struct Pids {
    by_key: HashMap<(String, u32, u64), u64>,
    used: HashMap<u64, ()>,
    next: u64,
}

impl Pids {
    fn get(&mut self, host: &str, pid: u32, started: u64) -> (u64, bool) {
        let key = (host.to_owned(), pid, started);
        if let Some(&id) = self.by_key.get(&key) {
            return (id, false);
        }
        let id = if self.used.contains_key(&u64::from(pid)) {
            self.next += 1;
            SYNTHETIC_PID + self.next
        } else {
            u64::from(pid)
        };
        self.used.insert(id, ());
        self.by_key.insert(key, id);
        (id, true)
    }
}

/// Writes events one by one: a trace of many processes is never held whole.
struct Events<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> Events<W> {
    fn push(&mut self, event: Value) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, &event).map_err(io::Error::other)
    }
}

fn metadata<W: Write>(events: &mut Events<W>, id: u64, name: &str, sort: usize) -> io::Result<()> {
    events.push(json!({"name": "process_name", "ph": "M", "pid": id, "tid": 0, "args": {"name": name}}))?;
    events.push(json!({"name": "process_sort_index", "ph": "M", "pid": id, "tid": 0, "args": {"sort_index": sort}}))?;
    events.push(json!({"name": "thread_name", "ph": "M", "pid": id, "tid": 0, "args": {"name": "allocations"}}))
}

/// Writes the whole trace.
pub fn write(m: &Merged, out: impl Write) -> io::Result<()> {
    let origin = m.origin_unix_ms;
    let mut pids = Pids { by_key: HashMap::new(), used: HashMap::new(), next: 0 };
    let mut events = Events { out, first: true };
    events.out.write_all(b"{\"traceEvents\":[\n")?;
    for (sort, p) in m.processes.iter().enumerate() {
        let (id, _) = pids.get(&p.hostname, p.pid, p.started_unix_ms);
        metadata(&mut events, id, &format!("{} {}", p.label(), super::units::truncate(&p.command, 80)), sort)?;
        let track = match p.device {
            Some(d) => format!("device {} memory", device(d)),
            None => format!("device memory ({} devices)", p.devices.len()),
        };
        let start = p.started_unix_ms.saturating_sub(origin);
        let mut last = None;
        let mut counter = |events: &mut Events<_>, t_ms: u64, live: u64, max: u64| -> io::Result<()> {
            let ts = us(start.saturating_add(t_ms));
            // Counters must not go back in time.
            if last.is_some_and(|l| ts < l) {
                return Ok(());
            }
            last = Some(ts);
            events.push(json!({"name": format!("{track}: live"), "ph": "C", "pid": id, "tid": 0, "ts": ts,
                               "args": {"bytes": live}}))?;
            events.push(json!({"name": format!("{track}: highest in interval"), "ph": "C", "pid": id, "tid": 0,
                               "ts": ts, "args": {"bytes": max}}))
        };
        // Nothing is live when the library loads; the write at exit gives the end.
        counter(&mut events, 0, 0, 0)?;
        for s in &p.timeline {
            counter(&mut events, s.t_ms, s.live_bytes, s.max_live_bytes.max(s.live_bytes))?;
        }
        let end = p.written_unix_ms.saturating_sub(p.started_unix_ms);
        if p.timeline.last().is_none_or(|s| s.t_ms < end) {
            counter(&mut events, end, p.totals.live_bytes, p.totals.live_bytes)?;
        }
    }
    let mut sort = m.processes.len();
    for f in &m.failures {
        let x = &f.failure;
        let started = f.at_unix_ms.saturating_sub(x.t_ms);
        let (id, new) = pids.get(&f.hostname, f.pid, started);
        if new {
            // A process beyond the kept summaries: name it all the same.
            metadata(&mut events, id, &format!("{} pid {}", f.hostname, f.pid), sort)?;
            sort += 1;
        }
        events.push(json!({
            "name": format!("allocation failed: {} {}", x.api, bytes(x.size)),
            "ph": "i", "s": "p", "pid": id, "tid": 0,
            "ts": us(f.at_unix_ms.saturating_sub(origin)),
            "args": {
                "api": x.api, "size": x.size, "code": x.code, "device": x.device,
                "out_of_memory": f.out_of_memory, "process_live_bytes": x.live_bytes,
                "device_free": x.device_free, "device_total": x.device_total,
            }
        }))?;
    }
    let other = json!({
        "generator": format!("npu-alloc-shim {}", env!("CARGO_PKG_VERSION")),
        "origin_unix_ms": origin,
        "recordings": m.recordings,
        "processes_omitted": m.processes_omitted,
    });
    let mut out = events.out;
    write!(out, "\n],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":{other}}}\n")?;
    out.flush()
}
