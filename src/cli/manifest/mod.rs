//! Reading a manifest (JobSpec, SessionSpec, NamespaceSpec) for the CLI: YAML or JSON, relative
//! file references resolved against the manifest's folder (so `mainApplicationFile: pi.py` next
//! to the manifest works without editing paths) and checked to exist, and every error the
//! daemon reports about a field shown at the line and column where the user wrote it.

mod positions;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::client::{ClientError, Problem};
use positions::Position;

/// The fields that name files the driver reads.
const FILE_FIELDS: [&str; 1] = ["mainApplicationFile"];
const DEP_LISTS: [&str; 3] = ["jars", "pyFiles", "files"];

/// A manifest read from a file or stdin.
pub struct Manifest {
    /// The JSON body to send.
    pub body: Value,
    /// The file as the user named it (`-` is `<stdin>`).
    name: String,
    positions: HashMap<String, Position>,
}

impl Manifest {
    /// Reads, parses and resolves a manifest; a local file it names must exist.
    pub fn load(file: &Path) -> Result<Self, ClientError> {
        let (name, text, base) = read(file).map_err(ClientError::Input)?;
        let mut body: Value = serde_saphyr::from_str(&text).map_err(|e| syntax_error(&name, &e))?;
        let mut manifest = Manifest {
            body: Value::Null,
            positions: positions::positions(&text),
            name,
        };
        let missing = resolve_paths(&mut body, &base);
        manifest.body = body;
        if missing.is_empty() {
            return Ok(manifest);
        }
        let problems = missing
            .into_iter()
            .map(|(field, message)| manifest.problem(Some(field), message))
            .collect();
        Err(ClientError::Manifest(problems))
    }

    /// The daemon's answer about this manifest: a refusal naming fields becomes one problem
    /// per field, at its place in the file, in file order.
    pub fn explain(&self, err: ClientError) -> ClientError {
        let ClientError::Api { errors, .. } = &err else {
            return err;
        };
        if errors.is_empty() {
            return err;
        }
        let mut problems: Vec<Problem> = errors
            .iter()
            .map(|e| self.problem(e.field.clone(), e.message.clone()))
            .collect();
        problems.sort_by_key(|p| p.position.unwrap_or((usize::MAX, 0)));
        ClientError::Manifest(problems)
    }

    fn problem(&self, field: Option<String>, message: String) -> Problem {
        let position = field
            .as_deref()
            .and_then(|f| positions::locate(&self.positions, f));
        Problem {
            file: self.name.clone(),
            position,
            field,
            message,
            snippet: None,
        }
    }
}

/// The manifest's name, text, and the folder its relative paths are relative to.
fn read(file: &Path) -> Result<(String, String, PathBuf), String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("read the manifest from stdin: {e}"))?;
        let base = std::env::current_dir().map_err(|e| e.to_string())?;
        return Ok(("<stdin>".into(), text, base));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("read the manifest {}: {e}", file.display()))?;
    let base = std::fs::canonicalize(file)
        .ok()
        .and_then(|p| p.parent().map(Path::to_owned))
        .unwrap_or_default();
    Ok((file.display().to_string(), text, base))
}

/// A file that is not YAML: where, what, and the parser's picture of the place.
fn syntax_error(name: &str, err: &serde_saphyr::Error) -> ClientError {
    let location = err.location();
    let mut message = err.without_snippet().to_string();
    // The parser's own "error: line L column C: " prefix: the CLI says both its own way.
    if let Some(rest) = message.strip_prefix("error: ") {
        message = rest.to_owned();
    }
    if let Some(l) = &location
        && let Some(rest) =
            message.strip_prefix(&format!("line {} column {}: ", l.line(), l.column()))
    {
        message = rest.to_owned();
    }
    if let Some(l) = &location
        && let Some(rest) =
            message.strip_suffix(&format!(" at line {}, column {}", l.line(), l.column()))
    {
        message = rest.to_owned();
    }
    let rendered = err.to_string();
    let snippet = rendered
        .split_once('\n')
        .map(|(_, picture)| picture.replace("<input>", name));
    ClientError::Manifest(vec![Problem {
        file: name.to_owned(),
        position: location.map(|l| (l.line() as usize, l.column() as usize)),
        field: None,
        message: format!("not valid YAML or JSON: {message}"),
        snippet,
    }])
}

/// Resolves relative paths; returns each local file that does not exist, with its field.
fn resolve_paths(body: &mut Value, base: &Path) -> Vec<(String, String)> {
    let mut missing = Vec::new();
    for field in FILE_FIELDS {
        if let Some(value) = body.get_mut(field)
            && let Some(message) = resolve(value, base)
        {
            missing.push((field.to_owned(), message));
        }
    }
    if let Some(deps) = body.get_mut("deps") {
        for list in DEP_LISTS {
            if let Some(Value::Array(items)) = deps.get_mut(list) {
                for (i, item) in items.iter_mut().enumerate() {
                    if let Some(message) = resolve(item, base) {
                        missing.push((format!("deps.{list}[{i}]"), message));
                    }
                }
            }
        }
    }
    missing
}

/// A plain relative path becomes `local://<absolute path>`; URIs and absolute paths are kept.
/// A relative path or a `file://` URI is on this machine, so it must exist: otherwise the job
/// would be accepted and fail when it runs. Returns what is wrong, if anything.
fn resolve(value: &mut Value, base: &Path) -> Option<String> {
    let Value::String(path) = value else {
        return None;
    };
    let local = if let Some(absolute) = path.strip_prefix("file://") {
        PathBuf::from(absolute)
    } else if !path.contains("://") && !path.starts_with('/') && !path.is_empty() {
        let absolute = base.join(&*path);
        let written = std::mem::replace(path, format!("local://{}", absolute.display()));
        if !absolute.exists() {
            return Some(format!(
                "{written}: no such file (looked for {}; relative paths are relative to the \
                 manifest)",
                absolute.display()
            ));
        }
        return None;
    } else {
        return None;
    };
    (!local.exists()).then(|| format!("{path}: no such file on this machine"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_files_resolve_against_the_manifest_and_must_exist() {
        let dir = std::env::temp_dir().join(format!("sk8-manifest-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("jobs")).unwrap();
        std::fs::write(dir.join("jobs/pi.py"), "").unwrap();
        let mut body = serde_json::json!({
            "mainApplicationFile": "jobs/pi.py",
            "deps": {"pyFiles": ["lib.zip", "s3a://b/x.zip"], "jars": ["/abs.jar"]}
        });
        let missing = resolve_paths(&mut body, &dir);
        let pi = format!("local://{}/jobs/pi.py", dir.display());
        assert_eq!(body["mainApplicationFile"], pi.as_str());
        assert_eq!(
            body["deps"]["pyFiles"][0],
            format!("local://{}/lib.zip", dir.display()).as_str()
        );
        assert_eq!(body["deps"]["pyFiles"][1], "s3a://b/x.zip");
        assert_eq!(body["deps"]["jars"][0], "/abs.jar");
        let fields: Vec<&str> = missing.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["deps.pyFiles[0]"], "{missing:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
