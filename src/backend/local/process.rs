//! Process-group handling on Linux: identify a process across sk8 restarts (pid plus start
//! time, so a recycled pid is never mistaken for ours), and stop a whole process tree.

use std::path::Path;

/// A process sk8 started, identified well enough to find it again after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessId {
    pub pid: u32,
    /// Clock ticks since boot at which the process started (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
}

impl ProcessId {
    /// Identifies a running process; `None` if it is gone already.
    pub fn of(pid: u32) -> Option<Self> {
        let (_, start_time) = stat(pid)?;
        Some(ProcessId { pid, start_time })
    }

    /// Whether this very process still runs (not a zombie, not a recycled pid).
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Some((state, start)) if state != 'Z' && start == self.start_time)
    }

    /// Whether any process is left in the group this process leads.
    pub fn group_alive(&self) -> bool {
        // SAFETY: kill(2) with signal 0 only checks for existence and permission.
        let rc = unsafe { libc::kill(-(self.pid as i32), 0) };
        rc == 0 && group_has_live_member(self.pid)
    }

    /// Sends `signal` to the whole process group, if the leader is still ours.
    pub fn signal_group(&self, signal: i32) {
        if self.is_alive() || self.group_alive() {
            // SAFETY: a negative pid addresses the process group sk8 created for this attempt.
            unsafe { libc::kill(-(self.pid as i32), signal) };
        }
    }
}

/// The state letter and start time of a process, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some((state, start_time))
}

/// Whether a group has a member that is not a zombie (zombies hold no resources and will be
/// reaped by their parent; waiting for them would hang a cancel).
fn group_has_live_member(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .any(|pid| member_state(pid, pgid).is_some_and(|state| state != 'Z'))
}

fn member_state(pid: u32, pgid: u32) -> Option<char> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let group: u32 = fields.get(2)?.parse().ok()?;
    (group == pgid).then(|| fields[0].chars().next()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_itself_and_rejects_a_wrong_start_time() {
        let me = ProcessId::of(std::process::id()).unwrap();
        assert!(me.is_alive());
        let impostor = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!impostor.is_alive());
    }
}
