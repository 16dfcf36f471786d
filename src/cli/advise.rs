//! `sk8 advise TEAM ENV NAME`: sizing advice for a job's next run, for a person (`-o json`:
//! the API's answer).

use std::process::ExitCode;

use serde_json::Value;

use super::client::{Client, ClientError};
use super::output::{Printer, Table, s};

pub async fn run(
    client: &Client,
    out: &Printer,
    signature: [String; 3],
    profile: Option<String>,
) -> Result<ExitCode, ClientError> {
    let [team, env, name] = signature;
    let mut query = vec![("team", team), ("env", env), ("name", name)];
    query.extend(profile.map(|p| ("profile", p)));
    let advice = client.get("/v1/advice", &query).await?;
    if out.is_json() {
        return Ok(out.json(&advice));
    }
    print(&advice);
    Ok(ExitCode::SUCCESS)
}

fn print(advice: &Value) {
    println!(
        "{}/{}/{} ({}), profile {}: {}",
        s(&advice["team"]),
        s(&advice["env"]),
        s(&advice["name"]),
        s(&advice["main"]),
        s(&advice["profile"]),
        headline(advice)
    );
    let recommendations = advice["recommendations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !recommendations.is_empty() {
        let mut table = Table::new([
            "SETTING",
            "NOW",
            "ADVISED",
            "CONFIDENCE",
            "SAVES/RUN",
            "RULE",
        ]);
        for r in &recommendations {
            table.row([
                s(&r["setting"]),
                s(&r["old"]),
                s(&r["new"]),
                format!(
                    "{} ({} runs)",
                    s(&r["confidence"]["level"]),
                    s(&r["confidence"]["runs"])
                ),
                saving(&r["saving"]),
                s(&r["rule"]),
            ]);
        }
        table.print();
        println!("evidence:");
        for r in &recommendations {
            println!("  {}: {}", s(&r["setting"]), s(&r["evidence"]));
        }
        println!("saves per run in all: {}", saving(&advice["saving"]));
    }
    for note in advice["notes"].as_array().into_iter().flatten() {
        println!("note: {}", s(note));
    }
}

fn headline(advice: &Value) -> String {
    match advice["status"].as_str() {
        Some("advice") => format!(
            "advice from {} runs",
            advice["runs"].as_array().map_or(0, Vec::len)
        ),
        Some("fits") => "the runs fit what they are given: nothing to change".into(),
        _ => format!("no advice: {}", s(&advice["reason"])),
    }
}

/// `12.5 GiB·s, 40 core·s` (negative: the change costs that much more, for safety).
fn saving(value: &Value) -> String {
    format!(
        "{:.1} GiB·s, {:.0} core·s",
        value["gibSeconds"].as_f64().unwrap_or(0.0),
        value["coreSeconds"].as_f64().unwrap_or(0.0)
    )
}
