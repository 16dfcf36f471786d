//! Reading a JobSpec file for `sk8 submit`: YAML or JSON, and relative file references
//! resolved against the manifest's folder, so `mainApplicationFile: pi.py` next to the manifest
//! works without editing paths.

use std::io::Read;
use std::path::Path;

/// The fields that name files the driver reads.
const FILE_FIELDS: [&str; 1] = ["mainApplicationFile"];
const DEP_LISTS: [&str; 3] = ["jars", "pyFiles", "files"];

/// Loads a manifest into the JSON body to send.
pub fn load(file: &Path) -> Result<serde_json::Value, String> {
    let (text, base) = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("read the manifest from stdin: {e}"))?;
        (text, std::env::current_dir().map_err(|e| e.to_string())?)
    } else {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("read the manifest {}: {e}", file.display()))?;
        let base = std::fs::canonicalize(file)
            .ok()
            .and_then(|p| p.parent().map(Path::to_owned))
            .unwrap_or_default();
        (text, base)
    };
    let mut body: serde_json::Value = serde_saphyr::from_str(&text)
        .map_err(|e| format!("{} is not valid YAML or JSON: {e}", file.display()))?;
    resolve_paths(&mut body, &base);
    Ok(body)
}

fn resolve_paths(body: &mut serde_json::Value, base: &Path) {
    for field in FILE_FIELDS {
        if let Some(value) = body.get_mut(field) {
            resolve(value, base);
        }
    }
    if let Some(deps) = body.get_mut("deps") {
        for list in DEP_LISTS {
            if let Some(serde_json::Value::Array(items)) = deps.get_mut(list) {
                items.iter_mut().for_each(|item| resolve(item, base));
            }
        }
    }
}

/// A plain relative path becomes `local://<absolute path>`; URIs and absolute paths are kept.
fn resolve(value: &mut serde_json::Value, base: &Path) {
    if let serde_json::Value::String(path) = value
        && !path.contains("://")
        && !path.starts_with('/')
        && !path.is_empty()
    {
        *path = format!("local://{}", base.join(&*path).display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_files_resolve_against_the_manifest() {
        let mut body = serde_json::json!({
            "mainApplicationFile": "jobs/pi.py",
            "deps": {"pyFiles": ["lib.zip", "s3a://b/x.zip"], "jars": ["/abs.jar"]}
        });
        resolve_paths(&mut body, Path::new("/work/examples"));
        assert_eq!(
            body["mainApplicationFile"],
            "local:///work/examples/jobs/pi.py"
        );
        assert_eq!(body["deps"]["pyFiles"][0], "local:///work/examples/lib.zip");
        assert_eq!(body["deps"]["pyFiles"][1], "s3a://b/x.zip");
        assert_eq!(body["deps"]["jars"][0], "/abs.jar");
    }
}
