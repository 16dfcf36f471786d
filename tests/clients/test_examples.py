"""The examples, run to completion against the real daemon that tests/clients.rs starts (real
Spark for jobs, Sail for sessions): the notebook headless, the Metaflow flow, the CI feature
tests, and the pipeline manifest. The daemon's address, team and env come from SK8_SERVER,
SK8_TEAM and SK8_ENV; SK8_BIN is the sk8 binary (for sk8.testing)."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
from nbclient import NotebookClient

import sk8

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
#: Deadlines: a real Spark job starts a JVM; on a loaded 2-core machine that is slow.
JOB_WAIT = 300
RUN_WAIT = 600


def test_the_jupyter_notebook_runs_headless_with_its_outputs():
    notebook = nbformat.read(EXAMPLES / "jupyter" / "features.ipynb", as_version=4)
    NotebookClient(notebook, timeout=RUN_WAIT, kernel_name="python3",
                   resources={"metadata": {"path": str(EXAMPLES / "jupyter")}}).execute()
    outputs = ["".join(_text(o) for o in cell.get("outputs", []))
               for cell in notebook.cells if cell.cell_type == "code"]
    assert "eu" in outputs[1] and "162.0" in outputs[1], outputs[1]
    assert "orders over 50: 3" in outputs[2], outputs[2]
    assert outputs[3].strip() == "10", outputs[3]


def test_the_pipeline_manifest_runs_as_a_batch_job():
    key = f"dcp/{uuid.uuid4().hex}/estimate/1"
    run = sk8.submit(EXAMPLES / "dcp" / "manifest.yaml", idempotency_key=key)
    assert run.job["spec"]["mainApplicationFile"] == f"local://{EXAMPLES / 'jobs' / 'pi.py'}"
    assert run.wait(progress=False, timeout=JOB_WAIT) == "SUCCEEDED", run.job
    assert "pi is roughly" in run.logs()
    again = sk8.submit(EXAMPLES / "dcp" / "manifest.yaml", idempotency_key=key)
    assert again.id == run.id and not again.created


def test_the_metaflow_feature_pipeline_runs_locally(tmp_path):
    output = tmp_path / "features"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "metaflow" / "feature_pipeline.py"), "--no-pylint",
         "run", "--output", str(output), "--day", "2026-12-01"],
        cwd=tmp_path, env={**os.environ, "USERNAME": "sk8-ci", "METAFLOW_HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=RUN_WAIT,
    )
    said = result.stdout + result.stderr
    assert result.returncode == 0, said
    assert "features of 2026-12-01: 100 rows" in said, said
    _, page = sk8.Client().request("GET", "/v1/jobs", query=[("label", "pipeline=metaflow")])
    assert [job["state"] for job in page["jobs"]] == ["SUCCEEDED"], page
    assert page["jobs"][0]["idempotencyKey"].startswith("metaflow/FeaturePipeline/"), page


def test_the_ci_feature_tests_pass_on_a_throwaway_sk8():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SK8_") or k == "SK8_BIN"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(EXAMPLES / "ci-cd" / "feature_tests.py")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_WAIT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout


def _text(output):
    if output.get("output_type") == "stream":
        return output.get("text", "")
    return output.get("data", {}).get("text/plain", "")
