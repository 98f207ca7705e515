//! The Job controller: Pods run to completion (`completions`, `parallelism`), failures
//! counted against `backoffLimit`, `activeDeadlineSeconds`, `suspend`, the
//! `SuccessCriteriaMet`/`Complete` and `FailureTarget`/`Failed` conditions, and removal
//! `ttlSecondsAfterFinished` after the end.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::queue::Key;
use super::util::{int_at, is_deleting, meta, pod_is_active, pod_is_ready, pod_phase, str_at};
use super::{Ctx, Outcome, events, gone};
use crate::objects::{now_rfc3339, parse_rfc3339};

/// Whether the Job has ended, and how.
pub(crate) fn finished(job: &Value) -> Option<&'static str> {
    let conditions = job
        .pointer("/status/conditions")
        .and_then(Value::as_array)?;
    conditions.iter().find_map(|c| {
        let is_true = str_at(c, "/status") == "True";
        match str_at(c, "/type") {
            "Complete" if is_true => Some("Complete"),
            "Failed" if is_true => Some("Failed"),
            _ => None,
        }
    })
}

fn condition(type_: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": type_, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
        "reason": reason, "message": message})
}

pub(crate) async fn reconcile(ctx: &Ctx, key: &Key) -> Outcome {
    let Some(job) = ctx.get("batch/jobs", &key.namespace, &key.name) else {
        return Ok(None);
    };
    if is_deleting(&job) {
        return Ok(None);
    }
    let ns = &key.namespace;
    let path = format!("/apis/batch/v1/namespaces/{ns}/jobs/{}", key.name);
    let pods_path = format!("/api/v1/namespaces/{ns}/pods");
    let now = now_rfc3339();
    let nowt = time::OffsetDateTime::now_utc();

    if finished(&job).is_some() {
        // TTL after finished: the Job (and, in the background, its Pods) goes.
        let Some(ttl) = int_at(&job, "/spec/ttlSecondsAfterFinished") else {
            return Ok(None);
        };
        let end = parse_rfc3339(str_at(&job, "/status/completionTime"))
            .or_else(|| {
                job.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .and_then(|cs| cs.last())
                    .and_then(|c| parse_rfc3339(str_at(c, "/lastTransitionTime")))
            })
            .unwrap_or(nowt);
        let due = end + time::Duration::seconds(ttl);
        if due > nowt {
            let left = (due - nowt).whole_milliseconds();
            return Ok(Some(Duration::from_millis(
                u64::try_from(left).unwrap_or(0) + 50,
            )));
        }
        let answer = ctx
            .kcm
            .delete(&path, Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})))
            .await;
        if !answer.ok() && !gone(&answer) {
            return Err(format!("deleting a finished job: {}", answer.message()));
        }
        return Ok(None);
    }

    let pods = ctx.owned("/pods", meta(&job, "uid"));
    let active: Vec<&Value> = pods.iter().filter(|p| pod_is_active(p)).collect();
    let succeeded = pods.iter().filter(|p| pod_phase(p) == "Succeeded").count() as i64;
    let failed = pods.iter().filter(|p| pod_phase(p) == "Failed").count() as i64;
    let ready = active.iter().filter(|p| pod_is_ready(p)).count() as i64;
    let completions = int_at(&job, "/spec/completions").unwrap_or(1);
    let parallelism = int_at(&job, "/spec/parallelism").unwrap_or(1);
    let backoff_limit = int_at(&job, "/spec/backoffLimit").unwrap_or(6);
    let suspended = job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
    let start = str_at(&job, "/status/startTime").to_string();
    let start = if start.is_empty() && !suspended {
        now.clone()
    } else {
        start
    };

    let mut conditions: Vec<Value> = job
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut ended: Option<(&str, String)> = None;
    let deadline = int_at(&job, "/spec/activeDeadlineSeconds");
    let past_deadline = deadline.is_some_and(|d| {
        parse_rfc3339(&start).is_some_and(|s| s + time::Duration::seconds(d) <= nowt)
    });
    if succeeded >= completions {
        let msg = "Reached expected number of succeeded pods";
        conditions.push(condition(
            "SuccessCriteriaMet",
            "CompletionsReached",
            msg,
            &now,
        ));
        conditions.push(condition("Complete", "CompletionsReached", msg, &now));
        ended = Some(("Completed", "Job completed".into()));
    } else if failed > backoff_limit {
        let msg = "Job has reached the specified backoff limit";
        conditions.push(condition(
            "FailureTarget",
            "BackoffLimitExceeded",
            msg,
            &now,
        ));
        conditions.push(condition("Failed", "BackoffLimitExceeded", msg, &now));
        ended = Some(("BackoffLimitExceeded", msg.into()));
    } else if past_deadline {
        let msg = "Job was active longer than specified deadline";
        conditions.push(condition("FailureTarget", "DeadlineExceeded", msg, &now));
        conditions.push(condition("Failed", "DeadlineExceeded", msg, &now));
        ended = Some(("DeadlineExceeded", msg.into()));
    }

    let mut active_count = active.len() as i64;
    if ended.is_some() {
        // What still runs is stopped.
        for p in &active {
            let answer = ctx
                .kcm
                .delete(&format!("{pods_path}/{}", meta(p, "name")), None)
                .await;
            if !answer.ok() && !gone(&answer) {
                return Err(format!("stopping a pod: {}", answer.message()));
            }
        }
        active_count = 0;
    } else if !suspended {
        let want = parallelism.min(completions - succeeded).max(0);
        let missing = (want - active_count).max(0);
        for _ in 0..missing {
            let pod = super::replicaset::pod_from_template(&job, "batch/v1", "Job", None, &[]);
            let answer = ctx.kcm.create(&pods_path, &pod).await;
            if answer.ok() {
                active_count += 1;
                events::record(
                    ctx,
                    events::JOB,
                    &job,
                    "Normal",
                    "SuccessfulCreate",
                    &format!("Created pod: {}", meta(&answer.body, "name")),
                )
                .await;
            } else {
                events::record(
                    ctx,
                    events::JOB,
                    &job,
                    "Warning",
                    "FailedCreate",
                    &format!("Error creating: {}", answer.message()),
                )
                .await;
                return Err(format!("creating a job pod: {}", answer.message()));
            }
        }
    }

    let mut status = Map::new();
    if !start.is_empty() {
        status.insert("startTime".into(), json!(start));
    }
    if ended.as_ref().is_some_and(|(r, _)| *r == "Completed") {
        status.insert("completionTime".into(), json!(now));
    }
    if active_count > 0 {
        status.insert("active".into(), json!(active_count));
    }
    if succeeded > 0 {
        status.insert("succeeded".into(), json!(succeeded));
    }
    if failed > 0 {
        status.insert("failed".into(), json!(failed));
    }
    status.insert(
        "ready".into(),
        json!(if ended.is_some() { 0 } else { ready }),
    );
    status.insert("terminating".into(), json!(0));
    status.insert("uncountedTerminatedPods".into(), json!({}));
    if !conditions.is_empty() {
        status.insert("conditions".into(), Value::Array(conditions));
    }
    super::replicaset::write_status(ctx, &path, &job, Value::Object(status)).await?;
    if let Some((reason, message)) = &ended {
        let type_ = if *reason == "Completed" {
            "Normal"
        } else {
            "Warning"
        };
        events::record(ctx, events::JOB, &job, type_, reason, message).await;
        // The TTL (if any) counts from now.
        return Ok(int_at(&job, "/spec/ttlSecondsAfterFinished").map(|t| {
            Duration::from_secs(u64::try_from(t).unwrap_or(0)) + Duration::from_millis(50)
        }));
    }
    if let Some(d) = deadline
        && let Some(s) = parse_rfc3339(&start)
    {
        let left = (s + time::Duration::seconds(d) - nowt)
            .whole_milliseconds()
            .max(0);
        return Ok(Some(Duration::from_millis(
            u64::try_from(left).unwrap_or(0) + 50,
        )));
    }
    Ok(None)
}
