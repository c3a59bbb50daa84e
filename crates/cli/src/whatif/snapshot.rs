//! From a decoded memory snapshot to the replay plan: per device, the
//! allocations and frees in order, the blocks that were already live when
//! recording began, and what the original run itself recorded (its peaks,
//! its segment count, its first OOM), for the side-by-side report.

use super::pickle::{Node, Pickle};
use serde_json::{Value, json};
use std::collections::HashMap;

/// What replay needs per event: op 0 alloc, 1 free.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Index of the event in the device's trace (what OOMs are reported at).
    pub index: usize,
    pub free: bool,
    pub addr: u64,
    pub size: u64,
    pub stream: i64,
}

/// The original run's own numbers, reconstructed from the trace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recorded {
    pub peak_reserved: u64,
    pub peak_allocated: u64,
    pub segments_peak: u64,
    pub segments_end: u64,
    /// (event index, size) of the first `oom` event.
    pub oom: Option<(usize, u64)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DevicePlan {
    pub device: usize,
    pub events: usize,
    /// (addr, size, stream) live before the first recorded event.
    pub initial: Vec<(u64, u64, i64)>,
    pub steps: Vec<Step>,
    pub recorded: Recorded,
    /// Events whose action this tool does not replay (`snapshot`, unknown ones).
    pub skipped: usize,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub devices: Vec<DevicePlan>,
    /// The allocator settings recorded in the snapshot, when it has them.
    pub settings: Option<String>,
}

pub fn plan(p: &Pickle) -> Result<Plan, String> {
    if !matches!(p.node(p.root), Node::Dict(_)) {
        return Err("not a memory snapshot: the top-level value is not a dict".into());
    }
    let traces = p
        .get(p.root, "device_traces")
        .and_then(|t| p.items(t))
        .ok_or("not a memory snapshot: no `device_traces` list (record with _record_memory_history first)")?;
    let mut devices = Vec::new();
    for (device, &trace) in traces.iter().enumerate() {
        let events = p.items(trace).ok_or(format!("device_traces[{device}] is not a list"))?;
        if events.is_empty() {
            continue;
        }
        devices.push(device_plan(p, device, events)?);
    }
    if devices.is_empty() {
        return Err(
            "the snapshot holds no allocator events: was _record_memory_history on while the workload ran?".into()
        );
    }
    add_segments(p, &mut devices)?;
    // Newer PyTorch writes the allocator configuration into the snapshot;
    // torch_npu's snapshots seen so far do not.
    let settings = p.get(p.root, "allocator_settings").and_then(|s| match p.node(s) {
        Node::Str(text) => Some(text.to_string()),
        _ => None,
    });
    Ok(Plan { devices, settings })
}

fn field(p: &Pickle, event: usize, key: &str, device: usize, n: usize) -> Result<i64, String> {
    p.get(event, key)
        .and_then(|v| p.int(v))
        .ok_or_else(|| format!("device_traces[{device}][{n}]: `{key}` missing or not an integer"))
}

fn device_plan(p: &Pickle, device: usize, events: &[usize]) -> Result<DevicePlan, String> {
    let mut plan = DevicePlan { device, events: events.len(), ..DevicePlan::default() };
    // addr -> size of the blocks the trace allocated and has not freed yet.
    let mut live: HashMap<u64, u64> = HashMap::new();
    let (mut reserved, mut allocated, mut segments) = (0i128, 0i128, 0i64);
    // Lowest running values: a trace that starts mid-run frees what it never
    // saw allocated, so the starting levels are what makes the minimum zero.
    let (mut low_reserved, mut low_allocated, mut low_segments) = (0i128, 0i128, 0i64);
    let (mut high_reserved, mut high_allocated, mut high_segments) = (0i128, 0i128, 0i64);
    for (n, &event) in events.iter().enumerate() {
        let action = p
            .get(event, "action")
            .and_then(|a| p.str(a))
            .ok_or_else(|| format!("device_traces[{device}][{n}]: no `action` string"))?;
        let addr = field(p, event, "addr", device, n)? as u64;
        let size = u64::try_from(field(p, event, "size", device, n)?).unwrap_or(0);
        let stream = p.get(event, "stream").and_then(|s| p.int(s)).unwrap_or(0);
        match action {
            "alloc" => {
                live.insert(addr, size);
                allocated += i128::from(size);
                plan.steps.push(Step { index: n, free: false, addr, size, stream });
            }
            // The caller's free is free_requested; free_completed follows when
            // the streams that used the block are done. Either one frees, once.
            "free_requested" | "free_completed" => {
                if live.remove(&addr).is_some() {
                    allocated -= i128::from(size);
                    plan.steps.push(Step { index: n, free: true, addr, size, stream });
                } else if action == "free_requested" {
                    // Allocated before recording began: replay it as live from the start.
                    plan.initial.push((addr, size, stream));
                    allocated -= i128::from(size);
                    plan.steps.push(Step { index: n, free: true, addr, size, stream });
                }
            }
            "segment_alloc" | "segment_map" => {
                reserved += i128::from(size);
                segments += i64::from(action == "segment_alloc");
            }
            "segment_free" | "segment_unmap" => {
                reserved -= i128::from(size);
                segments -= i64::from(action == "segment_free");
            }
            "oom" => {
                if plan.recorded.oom.is_none() {
                    plan.recorded.oom = Some((n, size));
                }
            }
            _ => plan.skipped += 1,
        }
        low_reserved = low_reserved.min(reserved);
        low_allocated = low_allocated.min(allocated);
        low_segments = low_segments.min(segments);
        high_reserved = high_reserved.max(reserved);
        high_allocated = high_allocated.max(allocated);
        high_segments = high_segments.max(segments);
    }
    plan.recorded.peak_reserved = (high_reserved - low_reserved).max(0) as u64;
    plan.recorded.peak_allocated = (high_allocated - low_allocated).max(0) as u64;
    plan.recorded.segments_peak = (high_segments - low_segments).max(0) as u64;
    plan.recorded.segments_end = (segments - low_segments).max(0) as u64;
    Ok(plan)
}

/// Blocks live in the snapshot's `segments` that the trace never allocated
/// were allocated before recording began and never freed: they are replayed
/// as live from the start. The segments also give the starting levels more
/// exactly than the trace alone when blocks outlive it.
fn add_segments(p: &Pickle, devices: &mut [DevicePlan]) -> Result<(), String> {
    let Some(segments) = p.get(p.root, "segments").and_then(|s| p.items(s)) else {
        return Ok(());
    };
    let mut traced: HashMap<usize, std::collections::HashSet<u64>> = HashMap::new();
    for plan in devices.iter() {
        let addrs = plan.steps.iter().map(|s| s.addr).chain(plan.initial.iter().map(|i| i.0)).collect();
        traced.insert(plan.device, addrs);
    }
    let mut end_segments: HashMap<usize, u64> = HashMap::new();
    for &segment in segments {
        let device = p.get(segment, "device").and_then(|d| p.int(d)).unwrap_or(0).max(0) as usize;
        *end_segments.entry(device).or_default() += 1;
        let stream = p.get(segment, "stream").and_then(|s| p.int(s)).unwrap_or(0);
        let Some(plan) = devices.iter_mut().find(|d| d.device == device) else { continue };
        for &block in p.get(segment, "blocks").and_then(|b| p.items(b)).unwrap_or(&[]) {
            let state = p.get(block, "state").and_then(|s| p.str(s));
            let addr = p.get(block, "address").and_then(|a| p.int(a));
            let size = p.get(block, "requested_size").or_else(|| p.get(block, "size")).and_then(|s| p.int(s));
            if let (Some("active_allocated"), Some(addr), Some(size)) = (state, addr, size)
                && !traced.get(&device).is_some_and(|t| t.contains(&(addr as u64)))
            {
                plan.initial.push((addr as u64, size.max(0) as u64, stream));
            }
        }
    }
    for plan in devices.iter_mut() {
        if let Some(&count) = end_segments.get(&plan.device) {
            // Expandable segments map into few segments: the trace's own count stays.
            plan.recorded.segments_end = plan.recorded.segments_end.max(count);
        }
    }
    Ok(())
}

/// The replayer's input (crates/cli/assets/whatif_replay.py documents the shape).
pub fn plan_json(plan: &Plan, sample_every: usize) -> Value {
    let devices: Vec<Value> = plan
        .devices
        .iter()
        .map(|d| {
            json!({
                "device": d.device,
                "initial": d.initial.iter().map(|&(a, s, st)| json!([a, s, st])).collect::<Vec<_>>(),
                "events": d.steps.iter()
                    .map(|s| json!([s.index, u8::from(s.free), s.addr, s.size, s.stream]))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "sample_every": sample_every, "devices": devices })
}

#[cfg(test)]
mod tests {
    use super::super::pickle::decode;
    use super::*;

    // pickle.dumps(protocol=4) of a snapshot shaped like torch_npu 2.10's:
    // {'segments': [{'device': 0, 'stream': 7, 'blocks': [{'address': 900, 'requested_size': 5,
    //   'size': 512, 'state': 'active_allocated'}]}],
    //  'device_traces': [[segment_alloc 100/2048, alloc 100/10, free_requested 100/10,
    //   free_completed 100/10, free_requested 555/20, oom 0/4096]]}
    fn sample() -> Vec<u8> {
        let out = std::process::Command::new("python3")
            .args(["-c", SAMPLE_PY])
            .output()
            .expect("python3 (used only to write the test pickle)");
        assert!(out.status.success());
        out.stdout
    }

    const SAMPLE_PY: &str = "import pickle,sys
e=lambda a,ad,s:{'action':a,'addr':ad,'size':s,'stream':7,'frames':[{'filename':'x.py','line':1}]}
d={'segments':[{'device':0,'stream':7,'blocks':[{'address':900,'requested_size':5,'size':512,'state':'active_allocated'}]}],
'device_traces':[[e('segment_alloc',100,2048),e('alloc',100,10),e('free_requested',100,10),e('free_completed',100,10),e('free_requested',555,20),e('oom',0,4096)]]}
sys.stdout.buffer.write(pickle.dumps(d,protocol=4))";

    #[test]
    fn trace_to_plan() {
        let pickle = decode(&sample()).expect("plain pickle");
        let plan = plan(&pickle).expect("snapshot");
        let d = &plan.devices[0];
        assert_eq!(d.events, 6);
        assert_eq!(d.initial, vec![(555, 20, 7), (900, 5, 7)]);
        let ops: Vec<(bool, u64)> = d.steps.iter().map(|s| (s.free, s.addr)).collect();
        assert_eq!(ops, vec![(false, 100), (true, 100), (true, 555)]);
        assert_eq!(d.recorded.oom, Some((5, 4096)));
        assert_eq!(d.recorded.peak_reserved, 2048);
        assert_eq!(d.recorded.segments_peak, 1);
        // 20 bytes were live before the trace began: the peak counts them.
        assert_eq!(d.recorded.peak_allocated, 30);
        assert_eq!(plan.settings, None);
    }

    #[test]
    fn not_a_snapshot() {
        let list = decode(b"\x80\x04]\x94.").unwrap();
        assert!(plan(&list).unwrap_err().contains("not a dict"));
        let empty = decode(b"\x80\x04}\x94.").unwrap();
        assert!(plan(&empty).unwrap_err().contains("device_traces"));
    }
}
