"""A feature pipeline as a Metaflow flow, on sk8: one step computes the day's features with a
batch job, the next reads them through an interactive session.

    python feature_pipeline.py run --output /shared/features --day 2026-12-01

The batch step's idempotency key is the flow's run, step and retry ids, so Metaflow retrying a
step whose submit already reached sk8 finds that job instead of starting another. Settings come
from SK8_SERVER, SK8_TEAM, SK8_ENV and SK8_TOKEN (see clients/python). OUTPUT must be where
both the job and the session can read: a shared path, or an object store URI.
"""

from pathlib import Path

from metaflow import FlowSpec, Parameter, current, retry, step

import sk8

JOB = Path(__file__).resolve().parent / "features_job.py"


class FeaturePipeline(FlowSpec):
    output = Parameter("output", help="where the features are written", required=True)
    day = Parameter("day", help="the day to compute", default="2026-12-01")

    @step
    def start(self):
        self.next(self.compute_features)

    @retry(times=1)
    @step
    def compute_features(self):
        key = f"metaflow/{current.flow_name}/{current.run_id}/{current.step_name}/{current.retry_count}"
        run = sk8.submit(
            name="daily-features",
            main_application_file=f"local://{JOB}",
            args=[self.output, self.day],
            labels={"pipeline": "metaflow", "run": str(current.run_id)},
            idempotency_key=key,
        )
        run.wait()
        self.job_id = run.id
        self.next(self.check_features)

    @step
    def check_features(self):
        spark = sk8.connect(name="feature-checks")
        try:
            features = spark.read.parquet(f"{self.output}/day={self.day}")
            self.rows = features.count()
            self.top_revenue = features.orderBy("revenue", ascending=False).first().revenue
        finally:
            spark.stop()
        assert self.rows == 100, f"expected a row per customer, found {self.rows}"
        self.next(self.end)

    @step
    def end(self):
        print(f"features of {self.day}: {self.rows} rows from job {self.job_id}; "
              f"top revenue {self.top_revenue}")


if __name__ == "__main__":
    FeaturePipeline()
