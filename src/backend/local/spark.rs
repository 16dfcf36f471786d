//! Finding a Spark to run: the configured `spark-submit`, `sparkHome`, `SPARK_HOME`, a
//! `pyspark` installation (a pip venv) whose `spark-submit` is on PATH, or else the venv that
//! `scripts/setup-spark.sh` (and so the quickstart) installs: `$SK8_SPARK_VENV`, by default
//! `~/.cache/sk8/spark-venv`, the one well-known place sk8 finds a Spark by itself.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::LocalConfig;

/// How to run `spark-submit` for a job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparkInstall {
    pub spark_submit: PathBuf,
    /// Exported as SPARK_HOME (pip installs of pyspark cannot find their own home otherwise).
    pub spark_home: Option<PathBuf>,
    /// The Python beside a pip-installed pyspark, exported as PYSPARK_PYTHON.
    pub python: Option<PathBuf>,
}

impl SparkInstall {
    /// The environment Spark needs to find itself (and its Python).
    pub fn export(&self, command: &mut tokio::process::Command) {
        if let Some(home) = &self.spark_home {
            command.env("SPARK_HOME", home);
        }
        if let Some(python) = &self.python {
            command.env("PYSPARK_PYTHON", python);
        }
    }
}

/// The pyspark version `scripts/setup-spark.sh` pins (a unit test keeps them in step).
const PYSPARK_VERSION: &str = "4.3.0";

/// Where `scripts/setup-spark.sh` puts its venv and sk8 looks last: `$SK8_SPARK_VENV`, else
/// `~/.cache/sk8/spark-venv`.
pub fn default_venv() -> Option<PathBuf> {
    std::env::var_os("SK8_SPARK_VENV")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from(std::env::var_os("HOME")?).join(".cache/sk8/spark-venv")))
}

/// What to tell a user who has no Spark: the commands that install one where sk8 finds it.
pub fn install_hint() -> String {
    let venv = default_venv().map_or_else(|| "~/.cache/sk8/spark-venv".into(), |v| tilde(&v));
    format!(
        "no Spark installation found for the local backend. Install one where sk8 finds it by \
         itself with `scripts/setup-spark.sh` (in sk8's repository), or by hand with \
         `python3 -m venv {venv} && {venv}/bin/pip install pyspark=={PYSPARK_VERSION}` (Spark \
         needs Java 17 or newer); or point backend.local.sparkHome (or SPARK_HOME) at a Spark \
         you have (sk8 looks again for every job)"
    )
}

/// `path` with the home directory shown as `~`.
fn tilde(path: &Path) -> String {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    match home.and_then(|home| path.strip_prefix(home).ok().map(Path::to_owned)) {
        Some(rest) => format!("~/{}", rest.display()),
        None => path.display().to_string(),
    }
}

/// Resolves the Spark to use, or explains how to get one.
pub fn find(config: &LocalConfig) -> Result<SparkInstall, String> {
    find_with(config, std::env::var_os("PATH"), default_venv())
}

fn find_with(
    config: &LocalConfig,
    path: Option<OsString>,
    venv: Option<PathBuf>,
) -> Result<SparkInstall, String> {
    if let Some(submit) = &config.spark_submit {
        return if submit.is_file() {
            Ok(SparkInstall {
                spark_submit: submit.clone(),
                spark_home: config.spark_home.clone(),
                python: None,
            })
        } else {
            Err(format!(
                "backend.local.sparkSubmit {} does not exist; {}",
                submit.display(),
                install_hint()
            ))
        };
    }
    if let Some(home) = &config.spark_home {
        return from_home(home).ok_or_else(|| {
            format!(
                "sparkHome/SPARK_HOME {} has no bin/spark-submit; {}",
                home.display(),
                install_hint()
            )
        });
    }
    path.and_then(on_path)
        .or_else(|| in_venv(&venv?))
        .ok_or_else(install_hint)
}

fn from_home(home: &Path) -> Option<SparkInstall> {
    let spark_submit = home.join("bin/spark-submit");
    spark_submit.is_file().then(|| SparkInstall {
        spark_submit,
        spark_home: Some(home.to_owned()),
        python: venv_python(home),
    })
}

/// A `spark-submit` on PATH: a Spark distribution's `bin/`, or a venv's `bin/` next to
/// `lib/python3.X/site-packages/pyspark`.
fn on_path(path: OsString) -> Option<SparkInstall> {
    std::env::split_paths(&path)
        .filter(|dir| dir.join("spark-submit").is_file())
        .find_map(|bin| {
            let root = bin.parent()?;
            if root.join("jars").is_dir() {
                return from_home(root);
            }
            in_venv(root)
        })
}

/// The pyspark installed in the venv `venv` (`lib/python3.X/site-packages/pyspark`).
fn in_venv(venv: &Path) -> Option<SparkInstall> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    lib.filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/pyspark"))
        .find(|home| home.join("bin/spark-submit").is_file())
        .and_then(|home| from_home(&home))
}

/// `<venv>/bin/python` when `home` is `<venv>/lib/python3.X/site-packages/pyspark`.
fn venv_python(home: &Path) -> Option<PathBuf> {
    let venv = home.ancestors().nth(4)?;
    let python = venv.join("bin/python");
    (home.parent()?.ends_with("site-packages") && python.is_file()).then_some(python)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A venv as pip leaves it: `lib/python3.11/site-packages/pyspark/bin/spark-submit`.
    fn fake_venv(root: &Path) -> PathBuf {
        let home = root.join("lib/python3.11/site-packages/pyspark");
        std::fs::create_dir_all(home.join("bin")).unwrap();
        std::fs::write(home.join("bin/spark-submit"), "#!/bin/sh\n").unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/python"), "").unwrap();
        home
    }

    #[test]
    fn the_setup_scripts_venv_is_found_when_nothing_else_names_a_spark() {
        let dir = tempfile::tempdir().unwrap();
        let home = fake_venv(dir.path());
        let found = find_with(&LocalConfig::default(), None, Some(dir.path().into())).unwrap();
        assert_eq!(found.spark_submit, home.join("bin/spark-submit"));
        assert_eq!(found.spark_home, Some(home));
        assert_eq!(found.python, Some(dir.path().join("bin/python")));
    }

    #[test]
    fn without_any_spark_the_error_names_the_commands_that_install_one() {
        let dir = tempfile::tempdir().unwrap();
        let nowhere = Some(dir.path().join("no-venv"));
        let err = find_with(&LocalConfig::default(), None, nowhere).unwrap_err();
        assert!(err.contains("`scripts/setup-spark.sh`"), "{err}");
        assert!(err.contains("/bin/pip install pyspark==4.3.0`"), "{err}");
    }

    #[test]
    fn the_hint_pins_the_version_the_setup_script_installs() {
        let script = include_str!("../../../scripts/setup-spark.sh");
        let pinned = format!("SK8_PYSPARK_VERSION:-{PYSPARK_VERSION}}}");
        assert!(
            script.contains(&pinned),
            "scripts/setup-spark.sh pins {pinned}?"
        );
    }
}
