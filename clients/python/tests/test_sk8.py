"""sk8.connect, sk8.submit and Run against the real daemon: sessions from the environment
alone and resumed after an idle stop, idempotent submits, every way a run ends, typed errors."""

import io
import os
import time

import pytest

import sk8
from sk8.session import remote_url

from conftest import fake_job

#: Every wait in these tests has its own deadline, generous for a loaded 2-core machine.
WAIT = 120.0


def test_connect_from_the_environment_alone():
    progress = io.StringIO()
    spark = sk8.connect(progress=progress)
    try:
        assert spark.range(5).count() == 5
        assert spark.sql("SELECT 40 + 2 AS answer").collect()[0].answer == 42
    finally:
        spark.stop()
    said = progress.getvalue()
    assert f"session {os.environ['SK8_TEAM']}/{os.environ['SK8_ENV']}/notebook is READY" in said, said


def test_a_stopped_session_is_resumed_by_connect(unique):
    client = sk8.Client()
    spark = sk8.connect(name=unique, idle_timeout=1, progress=False)
    assert spark.range(3).count() == 3
    spark.stop()
    session = _session_named(client, unique)
    stopped = _wait_session(client, session["id"], "STOPPED")
    assert stopped["starts"] == 1, stopped
    progress = io.StringIO()
    spark = sk8.connect(name=unique, progress=progress)
    try:
        assert spark.range(7).count() == 7
    finally:
        spark.stop()
    _, again = client.request("GET", f"/v1/sessions/{session['id']}")
    assert again["starts"] == 2, again
    assert "is READY" in progress.getvalue()


def test_the_same_idempotency_key_twice_gives_one_job(unique):
    key = f"pipeline-run-1/{unique}/attempt-0"
    first = sk8.submit(fake_job(unique), idempotency_key=key)
    second = sk8.submit(fake_job(unique), idempotency_key=key)
    assert first.id == second.id
    assert (first.created, second.created) == (True, False)
    _, page = sk8.Client().request("GET", "/v1/jobs", query=[("name", unique)])
    assert [job["id"] for job in page["jobs"]] == [first.id]
    with pytest.raises(sk8.Conflict) as refused:
        sk8.submit(fake_job(unique, args=["other"]), idempotency_key=key)
    assert refused.value.status == 409 and refused.value.code == "conflict"
    assert first.wait(progress=False, timeout=WAIT) == "SUCCEEDED"


def test_a_dry_run_shows_the_effective_spec_and_submits_nothing(unique):
    effective = sk8.dry_run(fake_job(unique), executor={"instances": 2})
    spec = effective["spec"]
    assert (spec["name"], spec["executor"]["instances"]) == (unique, 2), spec
    assert spec["team"] == os.environ["SK8_TEAM"], spec
    _, page = sk8.Client().request("GET", "/v1/jobs", query=[("name", unique)])
    assert page["jobs"] == [], "a dry run stores nothing"
    with pytest.raises(sk8.InvalidRequest) as refused:
        sk8.dry_run(fake_job(unique), retry={"maxAttempts": 0})
    assert refused.value.field == "retry.maxAttempts", refused.value


def test_wait_on_success_with_logs_events_and_links(unique):
    progress = io.StringIO()
    run = sk8.submit(fake_job(unique))
    assert run.wait(progress=progress, timeout=WAIT) == "SUCCEEDED"
    assert f"job {unique} ({run.id}) is SUCCEEDED" in progress.getvalue()
    assert "pi is roughly" in run.logs()
    assert [e["to"] for e in run.events()][-1] == "SUCCEEDED"
    assert run.links["logs"].endswith(f"/v1/jobs/{run.id}/logs")
    assert run.failure_class is None
    with pytest.raises(sk8.Conflict) as finished:
        run.cancel()
    assert finished.value.status == 409 and "SUCCEEDED" in finished.value.message


def test_wait_on_failure_surfaces_class_reason_and_links(unique):
    run = sk8.submit(fake_job(unique, mode="fail"))
    with pytest.raises(sk8.RunFailed) as failed:
        run.wait(progress=False, timeout=WAIT)
    err = failed.value
    assert err.state == "FAILED" and err.job_id == run.id
    assert err.failure_class == "application", err
    assert "ValueError: fake failure for the test" in (err.reason or ""), err
    assert "logs" in err.links and "events" in err.links
    assert run.failure_class == "application"
    assert run.wait(progress=False, check=False) == "FAILED"


def test_wait_on_cancel(unique):
    run = sk8.submit(fake_job(unique, mode="sleep"))
    deadline = time.monotonic() + WAIT
    while run.status() != "RUNNING":
        assert time.monotonic() < deadline, f"never RUNNING: {run.job}"
        time.sleep(0.1)
    lines = run.logs(follow=True)
    assert any("sleeping" in line for line in lines), "the live log shows the driver sleeping"
    lines.close()
    assert run.cancel() in ("CANCELLING", "CANCELLED")
    assert run.wait(progress=False, timeout=WAIT, check=False) == "CANCELLED"
    with pytest.raises(sk8.RunFailed) as cancelled:
        run.wait(progress=False)
    assert cancelled.value.state == "CANCELLED"


def test_submit_reads_a_manifest_with_paths_relative_to_it(tmp_path, unique):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "job.py").write_text("print('hi')\n")
    manifest = tmp_path / "job.yaml"
    manifest.write_text(f"name: {unique}\nmainApplicationFile: jobs/job.py\n"
                        "envVars: {{FAKE_SPARK_MODE: ok}}\n".replace("{{", "{").replace("}}", "}"))
    run = sk8.submit(manifest, labels={"from": "manifest"})
    assert run.job["spec"]["mainApplicationFile"] == f"local://{tmp_path}/jobs/job.py"
    assert run.job["spec"]["labels"] == {"from": "manifest"}
    assert run.job["team"] == os.environ["SK8_TEAM"]
    assert run.wait(progress=False, timeout=WAIT) == "SUCCEEDED"
    with pytest.raises(sk8.InvalidRequest) as missing:
        sk8.submit(_write(tmp_path / "bad.yaml", "name: x\nmainApplicationFile: no/such.py\n"))
    assert missing.value.field == "mainApplicationFile"


def test_errors_are_typed_with_code_message_and_field(unique, monkeypatch):
    with pytest.raises(sk8.InvalidRequest) as invalid:
        sk8.submit(fake_job(unique, driver={"memory": "lots"}))
    err = invalid.value
    assert (err.status, err.code, err.field) == (400, "invalid_request", "driver.memory")
    assert err.errors and err.errors[0].field == "driver.memory" and err.message
    with pytest.raises(sk8.NotFound) as missing:
        sk8.Run(sk8.Client(), {"id": "01kxxxxxxxxxxxxxxxxxxxxxxx", "state": "QUEUED"}).status()
    assert missing.value.code == "not_found"
    with pytest.raises(sk8.Unauthenticated):
        sk8.submit(fake_job(unique), token="not-a-token")
    with pytest.raises(sk8.Forbidden) as forbidden:
        sk8.submit(fake_job(unique), token=os.environ["SK8_TEST_OTHER_TOKEN"])
    assert forbidden.value.code == "forbidden"
    with pytest.raises(sk8.Unreachable):
        sk8.submit(fake_job(unique), server="http://127.0.0.1:9")
    with pytest.raises(sk8.InvalidRequest) as session_field:
        sk8.connect(name="Not A Name", progress=False)
    assert session_field.value.field == "name"
    monkeypatch.delenv("SK8_TEAM")
    with pytest.raises(sk8.ConfigError) as unset:
        sk8.connect(progress=False)
    assert unset.value.field == "team" and "SK8_TEAM" in unset.value.message


def test_settings_come_from_arguments_then_environment_then_the_config_file(tmp_path, monkeypatch):
    config = _write(tmp_path / "config.yaml", "server: http://sk8.example:8080/\nteam: t1\nenv: e1\ntls: true\n")
    monkeypatch.setenv("SK8_CONFIG", str(config))
    monkeypatch.delenv("SK8_SERVER")
    monkeypatch.delenv("SK8_TEAM")
    settings = sk8.Settings.load(env="e2")
    assert (settings.server, settings.team, settings.env, settings.tls) == ("http://sk8.example:8080", "t1", "e2", True)
    assert settings.token == os.environ["SK8_TOKEN"]
    _write(config, "colour: blue\n")
    with pytest.raises(sk8.ConfigError) as unknown:
        sk8.Settings.load()
    assert "colour" in unknown.value.message


def test_remote_urls_carry_the_token_the_way_pyspark_sends_it():
    base = "sc://127.0.0.1:15002/;x-sk8-session=01k"
    assert remote_url(base, None, False) == base
    assert remote_url(base, "t/k", False) == "sc://localhost:15002/;x-sk8-session=01k;token=t%2Fk"
    assert remote_url(base, "tok", True) == base + ";use_ssl=true;token=tok"
    with pytest.raises(sk8.SessionFailed) as refused:
        remote_url("sc://10.0.0.5:15002/;x-sk8-session=01k", "tok", False)
    assert refused.value.field == "tls"


def _write(path, text):
    path.write_text(text)
    return path


def _session_named(client, name):
    _, page = client.request("GET", "/v1/sessions")
    found = [s for s in page["sessions"] if s["name"] == name]
    assert len(found) == 1, page
    return found[0]


def _wait_session(client, session_id, state):
    deadline = time.monotonic() + WAIT
    while True:
        _, session = client.request("GET", f"/v1/sessions/{session_id}")
        if session["state"] == state:
            return session
        assert time.monotonic() < deadline, f"session never {state}: {session}"
        time.sleep(0.2)
