"""The package's tests run against a real sk8 daemon that tests/clients.rs starts: it exports
SK8_SERVER, SK8_TOKEN, SK8_TEAM and SK8_ENV (the client's own settings, as in a configured
notebook) and SK8_TEST_OTHER_TOKEN (a member of another team). Its jobs run on the fake
spark-submit, steered by each job's envVars (FAKE_SPARK_MODE=ok|fail|sleep)."""

import os
import uuid

import pytest


def pytest_configure(config):
    missing = [v for v in ("SK8_SERVER", "SK8_TOKEN", "SK8_TEAM", "SK8_ENV") if not os.environ.get(v)]
    if missing:
        raise pytest.UsageError(
            f"these tests need a daemon: run `cargo nextest run --test clients` ({missing} unset)")


@pytest.fixture
def unique():
    """A name no other test uses (the daemon is shared by the whole run)."""
    return "t-" + uuid.uuid4().hex[:10]


def fake_job(name, mode="ok", **extra):
    """A JobSpec for the fake spark-submit (team and env come from SK8_TEAM and SK8_ENV)."""
    spec = {
        "name": name,
        "mainApplicationFile": "s3a://bucket/jobs/job.py",
        "envVars": {"FAKE_SPARK_MODE": mode, "FAKE_SPARK_SECONDS": "120"},
    }
    spec.update(extra)
    return spec
