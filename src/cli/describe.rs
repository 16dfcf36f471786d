//! `sk8 describe ID`: everything sk8 knows of a job, for a person, in the manner of
//! `kubectl describe`: what it is, its timeline, and per attempt what it used against what it
//! was given, how it ended (evidence) and where to look further. `-o json` prints the job,
//! its events and every attempt's whole record as one document.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::client::{Client, ClientError, segment};
use super::output::{Printer, Table, s, time};
use crate::advice::auto::Sizing;
use crate::history::summary::{Peak, RunSummary, bytes};
use crate::record::Evidence;
use crate::remediation::resize::SizedFrom;

/// Fetches the job, its events and each started attempt's record, then prints them.
pub async fn run(client: &Client, out: &Printer, id: &str) -> Result<ExitCode, ClientError> {
    let job = client.get_job(id).await?;
    let events = client.events(id).await?;
    let mut attempts = Vec::new();
    for attempt in job["attempts"].as_array().into_iter().flatten() {
        // Attempts that never started (still queued for a retry) have no record to read.
        if attempt["backendRef"].is_null() {
            continue;
        }
        let path = format!(
            "/v1/jobs/{}/attempts/{}",
            segment(id),
            s(&attempt["attempt"])
        );
        attempts.push(client.get(&path, &[]).await?);
    }
    if out.is_json() {
        return Ok(out.json(&json!({"job": job, "events": events, "attempts": attempts})));
    }
    // Links in answers are paths of the daemon: a person needs the whole URL.
    for attempt in &mut attempts {
        client.absolutize(&mut attempt["links"]["sparkUi"]);
    }
    header(&job);
    if let Some(record) = typed::<Sizing>(&job["sizing"]) {
        sizing(&record);
    }
    timeline(&events);
    for attempt in &attempts {
        describe_attempt(&job, attempt);
    }
    Ok(ExitCode::SUCCESS)
}

/// `submit --dry-run`: the spec sk8 would run, as YAML, then where its size came from.
pub fn dry_run(out: &Printer, effective: &Value) -> ExitCode {
    if out.is_json() {
        return out.json(effective);
    }
    let spec = &effective["spec"];
    println!(
        "{} ({}/{}): dry run, nothing submitted; sk8 would run this spec:",
        s(&spec["name"]),
        s(&spec["team"]),
        s(&spec["env"])
    );
    // YAML, as the manifests are written; the JSON is one `-o json` away.
    match serde_saphyr::to_string(spec) {
        Ok(yaml) => print!("{}", indent(&yaml)),
        Err(_) => println!("{}", serde_json::to_string_pretty(spec).unwrap_or_default()),
    }
    if let Some(from) = typed::<SizedFrom>(&effective["sizedFrom"]) {
        println!("Remembered size: {}", from.describe());
    }
    if let Some(record) = typed::<Sizing>(&effective["sizing"]) {
        sizing(&record);
    }
    ExitCode::SUCCESS
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}\n")).collect()
}

/// `Key:  value` lines, keys aligned; empty values left out.
fn fields(indent: &str, rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    for (key, value) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        println!("{indent}{:<width$}  {value}", format!("{key}:"));
    }
}

fn header(job: &Value) {
    let attempts = format!(
        "{} of at most {}",
        s(&job["attemptCount"]),
        s(&job["spec"]["retry"]["maxAttempts"])
    );
    fields(
        "",
        &[
            ("Name", s(&job["name"])),
            ("ID", s(&job["id"])),
            (
                "Team/Env",
                format!("{}/{}", s(&job["team"]), s(&job["env"])),
            ),
            ("Namespace", s(&job["namespace"])),
            ("State", s(&job["state"])),
            ("Attempts", attempts),
            ("Created", time(&job["createdAt"])),
            ("Started", time(&job["startedAt"])),
            ("Finished", time(&job["finishedAt"])),
            ("Failure", s(&job["failureReason"])),
            ("Waiting", s(&job["waitingReason"])),
            ("Trace", s(&job["traceId"])),
        ],
    );
}

/// What sizing advice did at submit: each recommendation applied, withheld (and why) or
/// reverted.
fn sizing(record: &Sizing) {
    let runs = match record.runs.len() {
        0 => record.reason.clone().unwrap_or_default(),
        n => format!("advice from {n} runs"),
    };
    println!(
        "Sizing:    {} ({}): {runs}",
        record.mode.as_str(),
        record.profile.as_str()
    );
    if record.given() == 0 && record.reverted.is_empty() {
        return;
    }
    let mut table = Table::new(["  WHAT", "SETTING", "VALUE", "RULE", "WHY"]);
    for r in &record.reverted {
        table.row([
            "  reverted".into(),
            r.setting.clone(),
            format!("{} (back to {})", r.to, r.from),
            r.rule.clone(),
            r.reason.clone(),
        ]);
    }
    for r in &record.applied {
        let probation = if record.probation {
            ", on probation"
        } else {
            ""
        };
        table.row([
            "  applied".into(),
            r.setting.clone(),
            format!("{} (was {})", r.new, r.old),
            r.rule.clone(),
            format!("{:?} confidence{probation}", r.confidence.level).to_lowercase(),
        ]);
    }
    for w in &record.withheld {
        table.row([
            "  withheld".into(),
            w.setting.clone(),
            w.new.clone(),
            w.rule.clone(),
            w.why.clone(),
        ]);
    }
    table.print();
}

fn timeline(events: &Value) {
    println!("Timeline:");
    let mut table = Table::new(["  AT", "ATTEMPT", "FROM", "TO", "REASON"]);
    for e in events.as_array().into_iter().flatten() {
        table.row([
            format!("  {}", time(&e["at"])),
            s(&e["attempt"]),
            s(&e["from"]),
            s(&e["to"]),
            s(&e["reason"]),
        ]);
    }
    table.print();
}

fn describe_attempt(job: &Value, detail: &Value) {
    let n = s(&detail["attempt"]);
    let ended = match time(&detail["endedAt"]) {
        t if t.is_empty() => "still running".to_string(),
        t => format!("ended {t}"),
    };
    println!(
        "Attempt {n}: {} on {} (created {}, {ended})",
        s(&detail["state"]),
        backend_of(detail),
        time(&detail["createdAt"])
    );
    let record = match s(&detail["record"]).as_str() {
        "" => "not gathered yet (it is gathered when the attempt ends)".to_string(),
        state => state.to_string(),
    };
    let mut rows = vec![
        ("Failure", s(&detail["failureReason"])),
        ("Spark app", s(&detail["appId"])),
        ("Record", record),
    ];
    if let Some(summary) = typed::<RunSummary>(&detail["summary"]) {
        rows.extend(summary_rows(&summary));
    }
    if let Some(evidence) = typed::<Evidence>(&detail["evidence"]) {
        rows.extend(evidence_rows(&evidence));
    }
    rows.extend(link_rows(job, detail));
    fields("  ", &rows);
}

fn typed<T: serde::de::DeserializeOwned>(value: &Value) -> Option<T> {
    (!value.is_null())
        .then(|| serde_json::from_value(value.clone()).ok())
        .flatten()
}

/// `local` or `kubernetes cluster/namespace`.
fn backend_of(detail: &Value) -> String {
    let backend = s(&detail["backend"]);
    let place = &detail["backendRef"];
    match (place["cluster"].as_str(), place["namespace"].as_str()) {
        (Some(cluster), Some(ns)) => format!("{backend} {cluster}/{ns}"),
        (None, Some(ns)) => format!("{backend} {ns}"),
        _ => backend,
    }
}

/// What the event log says the attempt did, against what it was given.
fn summary_rows(summary: &RunSummary) -> Vec<(&'static str, String)> {
    let mut rows = vec![("Summary", summary.headline())];
    if summary.tasks.total == 0 && summary.executors.added == 0 {
        return rows;
    }
    let t = &summary.tasks;
    rows.push((
        "Tasks",
        format!(
            "{} total, {} succeeded, {} failed, {} killed; task time {}, CPU {}, GC {}",
            t.total,
            t.succeeded,
            t.failed,
            t.killed,
            seconds(t.task_time_ms),
            seconds(t.cpu_time_ms),
            seconds(t.gc_time_ms)
        ),
    ));
    for failure in &t.failures {
        let what = failure.class_name.as_deref().unwrap_or(&failure.kind);
        let exit = failure
            .exit_code
            .map(|c| format!(" (exit {c})"))
            .unwrap_or_default();
        rows.push(("  failed", format!("{} × {what}{exit}", failure.count)));
    }
    let e = &summary.executors;
    let mut executors = format!(
        "{} added, {} removed, at most {} at once",
        e.added, e.removed, e.max_alive
    );
    for reason in &e.removal_reasons {
        executors.push_str(&format!("; {} × {}", reason.count, reason.reason));
    }
    rows.push(("Executors", executors));
    rows.push(("Allocated", allocation(summary)));
    rows.push(("Peak memory", memory(summary)));
    rows.push(("I/O", io(summary)));
    if let Some(worst) = &summary.stages.worst {
        rows.push((
            "Skew",
            format!(
                "stage {} (attempt {}): slowest task {} vs median {} over {} tasks",
                worst.stage_id,
                worst.attempt_id,
                seconds(worst.max_task_ms),
                seconds(worst.median_task_ms),
                worst.tasks
            ),
        ));
    }
    rows
}

fn allocation(summary: &RunSummary) -> String {
    let a = &summary.allocation;
    let usage = a
        .core_usage
        .map(|u| format!(" ({:.0}% used)", u * 100.0))
        .unwrap_or_default();
    let memory = a
        .executor_memory_mib
        .map(|m| format!(", {m} MiB per executor"))
        .unwrap_or_default();
    format!(
        "{:.0} core-s given, {:.0} task-s used{usage}; {:.1} GiB·s of memory{memory}",
        a.core_seconds, a.task_seconds, a.memory_gib_seconds
    )
}

fn memory(summary: &RunSummary) -> String {
    let m = &summary.memory;
    let peak = |label: &str, p: Option<Peak>| {
        p.map(|p| format!("{label} {} (p95 {})", bytes(p.max), bytes(p.p95)))
    };
    let one = |label: &str, b: Option<u64>| b.map(|b| format!("{label} {}", bytes(b)));
    let parts: Vec<String> = [
        peak("executor heap", m.executor_jvm_heap),
        peak("off-heap", m.executor_jvm_off_heap),
        peak("process RSS", m.executor_process_tree_rss),
        one("driver heap", m.driver_jvm_heap),
        one("driver RSS", m.driver_process_tree_rss),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        return "not reported (spark.eventLog.logStageExecutorMetrics off?)".into();
    }
    parts.join(", ")
}

fn io(summary: &RunSummary) -> String {
    let io = &summary.io;
    format!(
        "read {} ({} records), wrote {} ({} records), shuffle {} read / {} written, \
         spilled {} from memory / {} to disk",
        bytes(io.input_bytes),
        io.input_records,
        bytes(io.output_bytes),
        io.output_records,
        bytes(io.shuffle_read_bytes),
        bytes(io.shuffle_write_bytes),
        bytes(io.memory_spilled_bytes),
        bytes(io.disk_spilled_bytes)
    )
}

/// How the attempt ended as the backend saw it.
fn evidence_rows(evidence: &Evidence) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    if let Some(exit) = &evidence.process {
        let mut text = match (exit.exit_code, exit.signal) {
            (_, Some(signal)) => format!("killed by signal {signal}"),
            (Some(code), None) => format!("exit code {code}"),
            (None, None) => "no exit status".into(),
        };
        if let Some(by) = &exit.stopped_by_sk8 {
            text.push_str(&format!(", stopped by sk8: {by}"));
        }
        rows.push(("Process", text));
    }
    for pod in &evidence.pods {
        rows.push(("Pod", pod_line(pod)));
    }
    for event in &evidence.events {
        rows.push((
            "Event",
            format!(
                "{} {} on {}: {} (×{})",
                event.kind, event.reason, event.object, event.message, event.count
            ),
        ));
    }
    for gap in &evidence.gaps {
        rows.push(("Not recorded", gap.clone()));
    }
    rows
}

fn pod_line(pod: &crate::record::evidence::PodEvidence) -> String {
    let mut parts = vec![format!("{} ({})", pod.name, pod.role)];
    parts.extend(pod.phase.clone());
    parts.extend(pod.reason.clone());
    for c in &pod.containers {
        let mut state: Vec<String> = c.reason.iter().cloned().collect();
        state.extend(c.exit_code.map(|code| format!("exit {code}")));
        state.extend(c.waiting.clone().map(|w| format!("waiting: {w}")));
        if !state.is_empty() {
            parts.push(format!("{}: {}", c.name, state.join(", ")));
        }
    }
    for condition in &pod.conditions {
        parts.push(format!(
            "{}={}{}",
            condition.kind,
            condition.status,
            condition
                .reason
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    parts.extend(pod.log_tail.clone().map(|key| format!("log tail: {key}")));
    parts.join("; ")
}

fn link_rows(job: &Value, detail: &Value) -> Vec<(&'static str, String)> {
    let id = s(&job["id"]);
    let n = s(&detail["attempt"]);
    vec![
        ("Spark UI", s(&detail["links"]["sparkUi"])),
        ("History", s(&detail["links"]["historyServer"])),
        ("Logs", format!("sk8 logs {id} --attempt {n}")),
    ]
}

/// Milliseconds for a person: `850 ms`, `12.3 s`, `4m 05s`, `2h 01m`.
fn seconds(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::seconds;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(seconds(850), "850 ms");
        assert_eq!(seconds(12_340), "12.3 s");
        assert_eq!(seconds(245_000), "4m 05s");
        assert_eq!(seconds(7_260_000), "2h 01m");
    }
}
