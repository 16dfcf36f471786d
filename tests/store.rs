//! The execution-history store, the same suite on SQLite and on a real Postgres: inserts and
//! idempotency (including concurrent retries), optimistic writes, listing, attempts, events and
//! the live-job scan the reconciler relies on.

mod common;

use std::collections::BTreeMap;

use chrono::Utc;
use common::{Engine, TestDb, both_engines};
use sk8::audit::AuditEvent;
use sk8::domain::jobspec::Format;
use sk8::domain::{Attempt, Job, JobSpec, JobState, NewEvent, SpecDefaults};
use sk8::store::{AuditFilter, InsertOutcome, JobFilter, LiveJob, LiveScope, Store, StoreOptions};

both_engines!(
    insert_get_and_idempotency,
    concurrent_inserts_with_one_key_create_one_job,
    saves_are_optimistic_and_carry_attempts_and_events,
    list_filters_orders_and_pages,
    live_jobs_and_counts_by_state,
    audit_rows_are_listed_newest_first_and_pruned_by_age,
    an_ended_attempt_gets_a_pending_record_that_is_filled_in_and_expires,
);

/// A store on its own database; the `TestDb` (Postgres) or temp dir (SQLite) lives as long.
struct Fixture {
    store: Store,
    _db: Option<TestDb>,
    _dir: tempfile::TempDir,
}

async fn fixture(engine: Engine) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => Some(TestDb::create().await),
    };
    let url = db.as_ref().map_or_else(
        || format!("sqlite://{}", dir.path().join("sk8.db").display()),
        |db| db.url.clone(),
    );
    let options = StoreOptions {
        url,
        max_connections: 8,
        acquire_timeout: std::time::Duration::from_secs(10),
    };
    Fixture {
        store: Store::connect(&options).await.expect("connect and migrate"),
        _db: db,
        _dir: dir,
    }
}

fn spec(team: &str, name: &str, labels: &[(&str, &str)]) -> JobSpec {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    let body = serde_json::json!({
        "team": team, "env": "dev", "name": name,
        "mainApplicationFile": "local:///opt/job.py", "labels": labels,
    });
    let defaults = SpecDefaults {
        spark_version: "4.0.1".into(),
        image: "apache/spark:4.0.1".into(),
    };
    JobSpec::parse(body.to_string().as_bytes(), Format::Json, &defaults).unwrap()
}

fn job(team: &str, name: &str, key: Option<&str>) -> Job {
    Job::new(spec(team, name, &[]), key.map(str::to_owned), Utc::now())
}

async fn insert(store: &Store, job: &Job) -> Job {
    match store.job_insert(job, &job.spec.digest()).await.unwrap() {
        InsertOutcome::Created(job) => job,
        other => panic!("expected a new job, got {other:?}"),
    }
}

async fn insert_get_and_idempotency(engine: Engine) {
    let fx = fixture(engine).await;
    let stored = insert(&fx.store, &job("team-a", "nightly", Some("k1"))).await;
    let read = fx.store.job_get(&stored.id).await.unwrap().unwrap();
    assert_eq!(read.spec, stored.spec);
    assert_eq!(read.state, JobState::Queued);
    assert_eq!(
        read.created_at.timestamp_millis(),
        stored.created_at.timestamp_millis()
    );
    let events = fx.store.event_list(&stored.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].from, events[0].to), (None, JobState::Queued));

    let retry = job("team-a", "nightly", Some("k1"));
    match fx
        .store
        .job_insert(&retry, &retry.spec.digest())
        .await
        .unwrap()
    {
        InsertOutcome::Existing(found) => assert_eq!(found.id, stored.id),
        other => panic!("same key, same spec: {other:?}"),
    }
    let different = job("team-a", "other-name", Some("k1"));
    match fx
        .store
        .job_insert(&different, &different.spec.digest())
        .await
        .unwrap()
    {
        InsertOutcome::KeyConflict { existing } => assert_eq!(existing, stored.id),
        other => panic!("same key, other spec: {other:?}"),
    }
    // The losing inserts left nothing behind.
    assert!(fx.store.job_get(&different.id).await.unwrap().is_none());
    // Keys are scoped per team.
    insert(&fx.store, &job("team-b", "nightly", Some("k1"))).await;
}

async fn concurrent_inserts_with_one_key_create_one_job(engine: Engine) {
    let fx = fixture(engine).await;
    let attempts = (0..20).map(|_| {
        let store = fx.store.clone();
        tokio::spawn(async move {
            let job = job("team-a", "nightly", Some("same-key"));
            store.job_insert(&job, &job.spec.digest()).await.unwrap()
        })
    });
    let outcomes = futures::future::join_all(attempts).await;
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for outcome in outcomes {
        match outcome.unwrap() {
            InsertOutcome::Created(job) => created.push(job.id),
            InsertOutcome::Existing(job) => existing.push(job.id),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(created.len(), 1);
    assert!(existing.iter().all(|id| *id == created[0]));
    let filter = JobFilter {
        limit: 100,
        ..JobFilter::default()
    };
    assert_eq!(fx.store.job_list(&filter).await.unwrap().len(), 1);
}

fn attempt_for(job: &Job, state: JobState) -> Attempt {
    Attempt {
        job_id: job.id.clone(),
        attempt: 1,
        backend: "local".into(),
        backend_ref: Some(serde_json::json!({"name": "sk8-x-1"})),
        state,
        created_at: Utc::now(),
        ended_at: None,
        failure_reason: None,
        failure_class: None,
        remediation: None,
    }
}

fn transition(from: JobState, to: JobState) -> NewEvent {
    NewEvent {
        attempt: Some(1),
        from: Some(from),
        to,
        reason: format!("test: {from} to {to}"),
        detail: Some("backend detail".into()),
    }
}

async fn saves_are_optimistic_and_carry_attempts_and_events(engine: Engine) {
    let fx = fixture(engine).await;
    let stored = insert(&fx.store, &job("team-a", "j", None)).await;
    let (mut mine, mut theirs) = (stored.clone(), stored.clone());

    mine.state = JobState::Submitted;
    mine.attempts = 1;
    let attempt = attempt_for(&mine, JobState::Submitted);
    let event = transition(JobState::Queued, JobState::Submitted);
    assert!(
        fx.store
            .job_save(&mut mine, Some(&attempt), Some(&event))
            .await
            .unwrap()
    );

    // A writer holding the old version loses, and writes nothing at all.
    theirs.state = JobState::Cancelled;
    let stale = transition(JobState::Queued, JobState::Cancelled);
    assert!(
        !fx.store
            .job_save(&mut theirs, None, Some(&stale))
            .await
            .unwrap()
    );
    let read = fx.store.job_get(&stored.id).await.unwrap().unwrap();
    assert_eq!(read.state, JobState::Submitted);
    let events = fx.store.event_list(&stored.id).await.unwrap();
    let states: Vec<JobState> = events.iter().map(|e| e.to).collect();
    assert_eq!(states, [JobState::Queued, JobState::Submitted]);
    assert_eq!(events[1].detail.as_deref(), Some("backend detail"));

    // Upserting the attempt updates it in place.
    let mut ended = attempt_for(&mine, JobState::Failed);
    ended.failure_reason = Some("boom".into());
    ended.failure_class = Some(sk8::domain::FailureClass::Application);
    ended.ended_at = Some(Utc::now());
    mine.state = JobState::Failed;
    assert!(
        fx.store
            .job_save(&mut mine, Some(&ended), None)
            .await
            .unwrap()
    );
    let attempts = fx.store.attempt_list(&stored.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].failure_reason.as_deref(), Some("boom"));
    assert_eq!(attempts[0].backend_ref, ended.backend_ref);
    assert_eq!(attempts[0].state, JobState::Failed);
}

async fn list_filters_orders_and_pages(engine: Engine) {
    let fx = fixture(engine).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let team = if i % 2 == 0 { "even" } else { "odd" };
        let labels = [("pipeline", if i < 3 { "a" } else { "b" }), ("n", "x")];
        let job = Job::new(spec(team, &format!("j{i}"), &labels), None, Utc::now());
        ids.push(insert(&fx.store, &job).await.id);
    }
    let list = |filter: JobFilter| {
        let store = fx.store.clone();
        async move { store.job_list(&filter).await.unwrap() }
    };
    let all = list(JobFilter {
        limit: 100,
        ..Default::default()
    })
    .await;
    let newest_first: Vec<_> = ids.iter().rev().cloned().collect();
    assert_eq!(
        all.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
        newest_first
    );
    let even = list(JobFilter {
        team: Some("even".into()),
        limit: 100,
        ..Default::default()
    });
    assert_eq!(even.await.len(), 4);
    let labelled = JobFilter {
        labels: vec![("pipeline".into(), "a".into()), ("n".into(), "x".into())],
        limit: 100,
        ..Default::default()
    };
    assert_eq!(list(labelled).await.len(), 3);
    let named = JobFilter {
        name: Some("j3".into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(list(named).await[0].id, ids[3]);
    // `before` continues after the last id of a page.
    let page = JobFilter {
        before: Some(ids[4].clone()),
        limit: 2,
        ..Default::default()
    };
    let page: Vec<_> = list(page).await.into_iter().map(|j| j.id).collect();
    assert_eq!(page, [ids[3].clone(), ids[2].clone()]);
}

async fn live_jobs_and_counts_by_state(engine: Engine) {
    let fx = fixture(engine).await;
    let mut done = insert(&fx.store, &job("t", "done", None)).await;
    let queued = insert(&fx.store, &job("t", "queued", None)).await;
    let mut running = insert(&fx.store, &job("t", "running", None)).await;
    let mut backing_off = insert(&fx.store, &job("t", "backing-off", None)).await;
    let mut due = insert(&fx.store, &job("t", "due", None)).await;
    done.state = JobState::Succeeded;
    assert!(fx.store.job_save(&mut done, None, None).await.unwrap());
    // Two attempts: the batch carries the current one.
    running.state = JobState::Running;
    running.attempts = 2;
    let first = attempt_for(&running, JobState::Failed);
    let mut second = attempt_for(&running, JobState::Running);
    second.attempt = 2;
    assert!(
        fx.store
            .job_save(&mut running, Some(&first), None)
            .await
            .unwrap()
    );
    assert!(
        fx.store
            .job_save(&mut running, Some(&second), None)
            .await
            .unwrap()
    );
    for (job, at) in [(&mut backing_off, 60), (&mut due, -1)] {
        job.state = JobState::Retrying;
        job.next_attempt_at = Some(Utc::now() + chrono::Duration::seconds(at));
        assert!(fx.store.job_save(job, None, None).await.unwrap());
    }

    let ids = |batch: &[LiveJob]| batch.iter().map(|l| l.job.id.clone()).collect::<Vec<_>>();
    let all = fx
        .store
        .job_live_batch(LiveScope::After(None), 100)
        .await
        .unwrap();
    assert_eq!(
        ids(&all),
        [&queued, &running, &backing_off, &due].map(|j| j.id.clone())
    );
    let current = all[1].attempt.as_ref().expect("the running job's attempt");
    assert_eq!((current.attempt, current.state), (2, JobState::Running));
    assert!(all[0].attempt.is_none());
    // Pages follow on from the last id without gaps.
    let first_page = fx
        .store
        .job_live_batch(LiveScope::After(None), 3)
        .await
        .unwrap();
    let rest = fx
        .store
        .job_live_batch(LiveScope::After(Some(&first_page[2].job.id)), 3)
        .await
        .unwrap();
    assert_eq!([ids(&first_page), ids(&rest)].concat(), ids(&all));
    // By id: finished and unknown ones are left out.
    let named = [
        done.id.clone(),
        running.id.clone(),
        sk8::domain::JobId::generate(),
    ];
    let by_id = fx
        .store
        .job_live_batch(LiveScope::Ids(&named), 100)
        .await
        .unwrap();
    assert_eq!(ids(&by_id), [running.id.clone()]);
    // Any state, by id: what the orphan sweep reads.
    let found = fx.store.job_get_many(&named).await.unwrap();
    let mut found: Vec<_> = found.into_iter().map(|j| j.id).collect();
    found.sort();
    assert_eq!(found, [done.id.clone(), running.id.clone()]);
    assert!(
        fx.store
            .job_live_batch(LiveScope::Ids(&[]), 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Waiting: queued, and retrying once the backoff is over.
    let waiting = fx
        .store
        .job_live_batch(
            LiveScope::Waiting {
                now: Utc::now(),
                after: None,
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(ids(&waiting), [queued.id.clone(), due.id.clone()]);
    let after_queued = LiveScope::Waiting {
        now: Utc::now(),
        after: Some(&queued.id),
    };
    let rest = fx.store.job_live_batch(after_queued, 100).await.unwrap();
    assert_eq!(ids(&rest), [due.id.clone()]);

    let mut counts = fx.store.job_count_by_state().await.unwrap();
    counts.sort_by_key(|(state, _)| state.as_str());
    assert_eq!(
        counts,
        [
            (JobState::Queued, 1),
            (JobState::Retrying, 2),
            (JobState::Running, 1),
            (JobState::Succeeded, 1)
        ]
    );
    fx.store.ping().await.unwrap();
}

async fn audit_rows_are_listed_newest_first_and_pruned_by_age(engine: Engine) {
    let fx = fixture(engine).await;
    let event = |actor: &str, days_ago: i64| {
        let mut event = AuditEvent::new(actor, "job.submit").team("payments".to_owned());
        event.at = Utc::now() - chrono::Duration::days(days_ago);
        event
    };
    let events = [event("old", 500), event("recent", 10), event("now", 0)];
    fx.store.audit_insert(&events).await.unwrap();
    let all = AuditFilter {
        limit: 10,
        ..AuditFilter::default()
    };
    let actors = |rows: Vec<(i64, AuditEvent)>| -> Vec<String> {
        rows.into_iter().map(|(_, e)| e.actor).collect()
    };
    let listed = fx.store.audit_list(&all).await.unwrap();
    assert_eq!(actors(listed), ["now", "recent", "old"]);
    let cutoff = Utc::now() - chrono::Duration::days(400);
    assert_eq!(fx.store.audit_prune(cutoff).await.unwrap(), 1);
    let listed = fx.store.audit_list(&all).await.unwrap();
    assert_eq!(actors(listed), ["now", "recent"]);
}

async fn an_ended_attempt_gets_a_pending_record_that_is_filled_in_and_expires(engine: Engine) {
    use sk8::record::evidence::{Evidence, ProcessExit};
    use sk8::record::{AttemptRecord, RecordState};
    let fx = fixture(engine).await;
    let mut stored = insert(&fx.store, &job("team-a", "recorded", None)).await;
    stored.state = JobState::Running;
    stored.attempts = 1;
    let running = attempt_for(&stored, JobState::Running);
    assert!(
        fx.store
            .job_save(&mut stored, Some(&running), None)
            .await
            .unwrap()
    );
    assert!(
        fx.store.record_pending(10).await.unwrap().is_empty(),
        "not ended yet"
    );

    let ended_at = Utc::now() - chrono::Duration::days(3);
    let mut ended = attempt_for(&stored, JobState::Succeeded);
    ended.ended_at = Some(ended_at);
    stored.state = JobState::Succeeded;
    assert!(
        fx.store
            .job_save(&mut stored, Some(&ended), None)
            .await
            .unwrap()
    );
    // Saving the ended attempt again keeps the one record.
    assert!(
        fx.store
            .job_save(&mut stored, Some(&ended), None)
            .await
            .unwrap()
    );
    let pending = fx.store.record_pending(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state, RecordState::Pending);
    assert_eq!(
        pending[0].ended_at.timestamp_millis(),
        ended_at.timestamp_millis()
    );

    let mut record: AttemptRecord = pending[0].clone();
    record.state = RecordState::Recorded;
    record.app_id = Some("local-1796448131550".into());
    record.driver_log = Some(format!("sk8/{}/1/driver.log", stored.id));
    record.evidence = Some(Evidence {
        process: Some(ProcessExit::from_status(0)),
        ..Evidence::default()
    });
    record.summary = Some(serde_json::json!({"status": "complete", "tasks": {"total": 8}}));
    record.headline = Some("8 tasks".into());
    record.recorded_at = Some(Utc::now());
    assert!(
        fx.store
            .record_save(&record, RecordState::Pending)
            .await
            .unwrap()
    );
    assert!(fx.store.record_pending(10).await.unwrap().is_empty());
    // A second recorder that gathered the same attempt (a paused ex-holder of the lease)
    // does not overwrite the first one's record.
    let late = AttemptRecord {
        driver_log: None,
        headline: Some("gathered late".into()),
        ..record.clone()
    };
    assert!(
        !fx.store
            .record_save(&late, RecordState::Pending)
            .await
            .unwrap()
    );
    let read = fx.store.record_get(&stored.id, 1).await.unwrap().unwrap();
    assert_eq!(read.app_id, record.app_id);
    assert_eq!(read.evidence, record.evidence);
    assert_eq!(read.summary, record.summary);
    assert_eq!(read.headline, record.headline);
    assert_eq!(fx.store.record_list(&stored.id).await.unwrap().len(), 1);

    // Retention finds it once it is older than the cut-off, and not after its logs went.
    let two_days_ago = Utc::now() - chrono::Duration::days(2);
    let four_days_ago = Utc::now() - chrono::Duration::days(4);
    assert!(
        fx.store
            .record_expired(four_days_ago, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        fx.store
            .record_expired(two_days_ago, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    expire_the_logs_of(&fx, &read).await;
    assert!(
        fx.store
            .record_expired(two_days_ago, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Retention deletes an expired attempt's archived logs and event log, nothing else, and marks
/// its record; the summary and evidence stay.
async fn expire_the_logs_of(fx: &Fixture, record: &sk8::record::AttemptRecord) {
    use sk8::history::{Location, Objects, StoreOptions as HistoryOptions};
    let dir = tempfile::tempdir().unwrap();
    let objects = Objects::open(&Location::local(dir.path()), &HistoryOptions::default()).unwrap();
    let id = &record.job_id;
    let expired = [
        format!("sk8/{id}/1/driver.log"),
        format!("sk8/{id}/1/executors/exec-1.log"),
        "local-1796448131550".to_string(),
    ];
    let kept = ["sk8/other-job/1/driver.log", "local-1796448131551"];
    for key in expired.iter().map(String::as_str).chain(kept) {
        objects.put(key, "a line\n".into()).await.unwrap();
    }
    let retention = sk8::record::Retention::new(
        fx.store.clone(),
        objects.clone(),
        std::time::Duration::from_secs(2 * 86_400),
        std::time::Duration::from_secs(3600),
    );
    assert_eq!(retention.pass(Utc::now()).await.unwrap(), 1);
    for key in &expired {
        assert!(objects.head(key).await.is_err(), "{key} deleted");
    }
    for key in kept {
        assert!(objects.head(key).await.is_ok(), "{key} kept");
    }
    let read = fx.store.record_get(id, 1).await.unwrap().unwrap();
    assert!(read.logs_deleted_at.is_some());
    assert_eq!(read.driver_log, None);
    assert_eq!(read.summary, record.summary, "the summary stays");
    assert_eq!(read.evidence, record.evidence, "the evidence stays");
    assert_eq!(retention.pass(Utc::now()).await.unwrap(), 0, "once only");
}
