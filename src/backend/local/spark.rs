//! Finding a Spark to run: the configured `spark-submit`, `sparkHome`, `SPARK_HOME`, or a
//! `pyspark` installation (a pip venv) whose `spark-submit` is on PATH.

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

/// What to tell a user who has no Spark.
pub const INSTALL_HINT: &str = "no Spark installation found for the local backend. Install one \
    and point sk8 at it: `python3 -m venv ~/.sk8/spark && ~/.sk8/spark/bin/pip install pyspark`, \
    then set SPARK_HOME=$(~/.sk8/spark/bin/python -c 'import pyspark,os; \
    print(os.path.dirname(pyspark.__file__))') (or backend.local.sparkHome in the config) and \
    restart sk8; `scripts/quickstart.sh` does all of this for you";

/// Resolves the Spark to use, or explains how to get one.
pub fn find(config: &LocalConfig) -> Result<SparkInstall, String> {
    if let Some(submit) = &config.spark_submit {
        return if submit.is_file() {
            Ok(SparkInstall {
                spark_submit: submit.clone(),
                spark_home: config.spark_home.clone(),
                python: None,
            })
        } else {
            Err(format!(
                "backend.local.sparkSubmit {} does not exist; {INSTALL_HINT}",
                submit.display()
            ))
        };
    }
    if let Some(home) = &config.spark_home {
        return from_home(home).ok_or_else(|| {
            format!(
                "sparkHome/SPARK_HOME {} has no bin/spark-submit; {INSTALL_HINT}",
                home.display()
            )
        });
    }
    on_path().ok_or_else(|| INSTALL_HINT.to_string())
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
fn on_path() -> Option<SparkInstall> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| dir.join("spark-submit").is_file())
        .find_map(|bin| {
            let root = bin.parent()?;
            if root.join("jars").is_dir() {
                return from_home(root);
            }
            let lib = std::fs::read_dir(root.join("lib")).ok()?;
            lib.filter_map(|e| e.ok())
                .map(|e| e.path().join("site-packages/pyspark"))
                .find(|home| home.join("bin/spark-submit").is_file())
                .and_then(|home| from_home(&home))
        })
}

/// `<venv>/bin/python` when `home` is `<venv>/lib/python3.X/site-packages/pyspark`.
fn venv_python(home: &Path) -> Option<PathBuf> {
    let venv = home.ancestors().nth(4)?;
    let python = venv.join("bin/python");
    (home.parent()?.ends_with("site-packages") && python.is_file()).then_some(python)
}
