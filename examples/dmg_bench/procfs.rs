//! What Linux's /proc says of a process: memory, CPU time, and how often
//! each of its threads went to sleep and woke.

use super::Failure;
use std::fs;

/// Memory figures of /proc/PID/status, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
    /// Heap, stacks and other private memory: what the program itself holds.
    pub anon: u64,
    /// Pages of the executable and shared libraries (libzmq, libstdc++, libc).
    pub file: u64,
    /// Proportional set size: shared pages divided among their users.
    pub pss: u64,
}

pub fn memory(pid: u32) -> Result<Memory, Failure> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let field = |name: &str| -> Result<u64, Failure> {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("{path} has no {name} line"))
    };
    Ok(Memory {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
        anon: field("RssAnon:")?,
        file: field("RssFile:")?,
        pss: proportional_set_size(pid)?,
    })
}

fn proportional_set_size(pid: u32) -> Result<u64, Failure> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("{path} has no Pss line"))
}

/// One thread's counters.
#[derive(Debug, Clone)]
pub struct ThreadSample {
    pub tid: u32,
    pub name: String,
    /// Time on a CPU, in nanoseconds (/proc/PID/task/TID/schedstat).
    pub run_ns: u64,
    /// Times it went to sleep waiting (each is one wake-up later).
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

/// Every thread of a process at one instant.
#[derive(Debug, Clone)]
pub struct CpuSample {
    pub threads: Vec<ThreadSample>,
    /// utime + stime of /proc/PID/stat, in clock ticks (usually 10 ms).
    pub ticks: u64,
}

pub fn cpu(pid: u32) -> Result<CpuSample, Failure> {
    let task_dir = format!("/proc/{pid}/task");
    let entries = fs::read_dir(&task_dir).map_err(|e| format!("cannot list {task_dir}: {e}"))?;
    let mut threads = Vec::new();
    for entry in entries.flatten() {
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        threads.push(thread(pid, tid)?);
    }
    threads.sort_by_key(|thread| thread.tid);
    Ok(CpuSample {
        threads,
        ticks: process_ticks(pid)?,
    })
}

fn thread(pid: u32, tid: u32) -> Result<ThreadSample, Failure> {
    let base = format!("/proc/{pid}/task/{tid}");
    let read = |file: &str| {
        fs::read_to_string(format!("{base}/{file}")).map_err(|e| format!("cannot read {base}/{file}: {e}"))
    };
    let schedstat = read("schedstat")?;
    let run_ns =
        first_number(&schedstat).ok_or_else(|| format!("{base}/schedstat is not understood: {schedstat:?}"))?;
    let status = read("status")?;
    let switches = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(first_number)
            .ok_or_else(|| format!("{base}/status has no {name} line"))
    };
    Ok(ThreadSample {
        tid,
        name: read("comm")?.trim().to_owned(),
        run_ns,
        voluntary_switches: switches("voluntary_ctxt_switches:")?,
        involuntary_switches: switches("nonvoluntary_ctxt_switches:")?,
    })
}

fn first_number(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// utime + stime of the whole process. The command name (field 2) may
/// hold spaces, so fields are counted after its closing parenthesis.
fn process_ticks(pid: u32) -> Result<u64, Failure> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let after_name = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("{path} is not understood"))?;
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |index: usize| fields.get(index - 3).and_then(|f| f.parse::<u64>().ok());
    match (field(14), field(15)) {
        (Some(utime), Some(stime)) => Ok(utime + stime),
        _ => Err(format!("{path} has no utime/stime")),
    }
}

/// What a process did between two samples.
#[derive(Debug, Clone)]
pub struct CpuDelta {
    pub run_ns: u64,
    pub ticks: u64,
    /// Per thread present in both samples: (name, voluntary, involuntary).
    pub threads: Vec<(String, u64, u64)>,
}

pub fn delta(before: &CpuSample, after: &CpuSample) -> CpuDelta {
    let mut run_ns = 0;
    let mut threads = Vec::new();
    for late in &after.threads {
        let early = before.threads.iter().find(|t| t.tid == late.tid);
        let (run, voluntary, involuntary) = match early {
            Some(early) => (
                late.run_ns.saturating_sub(early.run_ns),
                late.voluntary_switches.saturating_sub(early.voluntary_switches),
                late.involuntary_switches.saturating_sub(early.involuntary_switches),
            ),
            None => (late.run_ns, late.voluntary_switches, late.involuntary_switches),
        };
        run_ns += run;
        threads.push((late.name.clone(), voluntary, involuntary));
    }
    CpuDelta {
        run_ns,
        ticks: after.ticks.saturating_sub(before.ticks),
        threads,
    }
}
