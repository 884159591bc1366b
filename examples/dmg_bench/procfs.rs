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
    let status = format!("/proc/{pid}/status");
    let status_text = read(&status)?;
    let rollup = format!("/proc/{pid}/smaps_rollup");
    Ok(Memory {
        rss: kib_field(&status, &status_text, "VmRSS:")?,
        hwm: kib_field(&status, &status_text, "VmHWM:")?,
        anon: kib_field(&status, &status_text, "RssAnon:")?,
        file: kib_field(&status, &status_text, "RssFile:")?,
        pss: kib_field(&rollup, &read(&rollup)?, "Pss:")?,
    })
}

fn read(path: &str) -> Result<String, Failure> {
    fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// The figure of a `Name:   123 kB` line of `text`, read from `path`.
fn kib_field(path: &str, text: &str, name: &str) -> Result<u64, Failure> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("{path} has no {name} line"))
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
    Ok(CpuSample {
        threads: thread_ids(pid)?
            .into_iter()
            .map(|tid| thread(pid, tid))
            .collect::<Result<_, _>>()?,
        ticks: process_ticks(pid)?,
    })
}

/// The ids of a process's threads (/proc/PID/task), in order.
pub fn thread_ids(pid: u32) -> Result<Vec<u32>, Failure> {
    let task_dir = format!("/proc/{pid}/task");
    let entries = fs::read_dir(&task_dir).map_err(|e| format!("cannot list {task_dir}: {e}"))?;
    let mut tids: Vec<u32> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// A thread's name (/proc/PID/task/TID/comm).
fn thread_name(pid: u32, tid: u32) -> Result<String, Failure> {
    Ok(read(&format!("/proc/{pid}/task/{tid}/comm"))?.trim().to_owned())
}

/// How the table names a thread: `main` for the main thread; else its own
/// name (libzmq's `ZMQbg/IO/0`, `ZMQbg/Reaper`), or `thread N` (N its rank
/// by id, the main thread's 1) when it kept the program's name, as with
/// the libzmq that cargo builds in, which names none of its threads.
pub fn thread_label(pid: u32, tid: u32) -> Result<String, Failure> {
    if tid == pid {
        return Ok("main".into());
    }
    let name = thread_name(pid, tid)?;
    if name != thread_name(pid, pid)? {
        return Ok(name);
    }
    let rank = thread_ids(pid)?.iter().position(|t| *t == tid).map_or(0, |index| index + 1);
    Ok(format!("thread {rank}"))
}

fn thread(pid: u32, tid: u32) -> Result<ThreadSample, Failure> {
    let base = format!("/proc/{pid}/task/{tid}");
    let schedstat = read(&format!("{base}/schedstat"))?;
    let run_ns =
        first_number(&schedstat).ok_or_else(|| format!("{base}/schedstat is not understood: {schedstat:?}"))?;
    let status = read(&format!("{base}/status"))?;
    let switches = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(first_number)
            .ok_or_else(|| format!("{base}/status has no {name} line"))
    };
    Ok(ThreadSample {
        tid,
        name: thread_label(pid, tid)?,
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
    let text = read(&path)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let memory = memory(pid).unwrap();
        assert!(
            memory.rss > 0 && memory.hwm >= memory.rss && memory.pss > 0,
            "{memory:?}"
        );
        // The main thread only: the test harness's other threads come and go.
        assert!(thread_ids(pid).unwrap().contains(&pid));
        let main = thread(pid, pid).unwrap();
        assert!(!main.name.is_empty() && main.run_ns > 0, "{main:?}");
        assert!(process_ticks(pid).is_ok());
    }
}
