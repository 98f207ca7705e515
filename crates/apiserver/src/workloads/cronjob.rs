//! The CronJob controller: a Job at each scheduled minute (standard five-field schedules
//! and the `@hourly`-style macros, in UTC or `spec.timeZone` when it is `UTC`/`Etc/UTC`),
//! `concurrencyPolicy` (Allow, Forbid, Replace), `suspend`, `startingDeadlineSeconds`,
//! `lastScheduleTime` / `lastSuccessfulTime` / `active`, and the history limits.

use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::queue::{Key, Kind};
use super::util::{int_at, is_deleting, meta, str_at};
use super::{Ctx, Outcome, check, events, gone};
use crate::objects::{format_rfc3339, parse_rfc3339};

/// A parsed schedule: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_star: bool,
    weekdays_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(min + i as u32);
        }
        s.parse::<u32>().map_err(|_| {
            format!("failed to parse int from {s}: strconv.Atoi: parsing \"{s}\": invalid syntax")
        })
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| format!("failed to parse int from {s}: strconv.Atoi: parsing \"{s}\": invalid syntax"))?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("step of range should be a positive number: {part}"));
        }
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min {
            return Err(format!(
                "beginning of range ({lo}) below minimum ({min}): {part}"
            ));
        }
        if hi > max {
            return Err(format!("end of range ({hi}) above maximum ({max}): {part}"));
        }
        if lo > hi {
            return Err(format!(
                "beginning of range ({lo}) beyond end of range ({hi}): {part}"
            ));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, text == "*" || text == "?"))
}

/// Parses a schedule as Kubernetes' CronJob validation does (robfig/cron's standard
/// parser: five fields or a descriptor); the error says what is wrong.
pub fn parse_schedule(text: &str) -> Result<Schedule, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty spec string".into());
    }
    let expanded = match text {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        t if t.starts_with('@') => return Err(format!("unrecognized descriptor: {t}")),
        t => t,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    if fields.len() != 5 {
        // robfig/cron prints the fields as a Go slice.
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let (minutes, _) = field(fields[0], 0, 59, &[])?;
    let (hours, _) = field(fields[1], 0, 23, &[])?;
    let (days, days_star) = field(fields[2], 1, 31, &[])?;
    let (months, _) = field(fields[3], 1, 12, &MONTHS)?;
    let (weekdays, weekdays_star) = field(fields[4], 0, 6, &WEEKDAYS)?;
    Ok(Schedule {
        minutes,
        hours,
        days,
        months,
        weekdays,
        days_star,
        weekdays_star,
    })
}

impl Schedule {
    /// Whether the minute starting at `t` is scheduled.
    pub fn matches(&self, t: OffsetDateTime) -> bool {
        let bit = |set: u64, v: u8| set & (1 << v) != 0;
        let day = bit(self.days, t.day());
        let weekday = bit(self.weekdays, t.weekday().number_days_from_sunday());
        let day_ok = if self.days_star || self.weekdays_star {
            day && weekday
        } else {
            day || weekday
        };
        bit(self.minutes, t.minute())
            && bit(self.hours, t.hour())
            && bit(self.months, u8::from(t.month()))
            && day_ok
    }

    /// The latest scheduled minute in `(after, now]`, looking back at most a week.
    pub fn latest(&self, after: OffsetDateTime, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let mut t = now.replace_second(0).ok()?.replace_nanosecond(0).ok()?;
        for _ in 0..(7 * 24 * 60) {
            if t <= after {
                return None;
            }
            if self.matches(t) {
                return Some(t);
            }
            t -= time::Duration::minutes(1);
        }
        None
    }

    /// The first scheduled minute after `now`, looking ahead at most a year and a day.
    pub fn next(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let mut t =
            now.replace_second(0).ok()?.replace_nanosecond(0).ok()? + time::Duration::minutes(1);
        for _ in 0..(367 * 24 * 60) {
            if self.matches(t) {
                return Some(t);
            }
            t += time::Duration::minutes(1);
        }
        None
    }
}

/// Wakes every CronJob once a minute (at the minute), so schedules fire without events.
pub(crate) async fn tick(ctx: Ctx) {
    loop {
        let now = OffsetDateTime::now_utc();
        let into_minute = u64::from(now.second()) * 1000 + u64::from(now.millisecond());
        tokio::time::sleep(Duration::from_millis(60_000 - into_minute.min(59_999) + 50)).await;
        if ctx.state.is_closing() {
            return;
        }
        let (cronjobs, _) = ctx.state.store().list("batch/cronjobs", None, None);
        for cj in cronjobs {
            ctx.queue.add(Key {
                kind: Kind::CronJob,
                namespace: cj.namespace.clone(),
                name: cj.name.clone(),
            });
        }
    }
}

fn job_ref(job: &Value) -> Value {
    json!({"kind": "Job", "namespace": meta(job, "namespace"), "name": meta(job, "name"),
        "uid": meta(job, "uid"), "apiVersion": "batch/v1", "resourceVersion": meta(job, "resourceVersion")})
}

pub(crate) async fn reconcile(ctx: &Ctx, key: &Key) -> Outcome {
    let Some(cj) = ctx.get("batch/cronjobs", &key.namespace, &key.name) else {
        return Ok(None);
    };
    if is_deleting(&cj) {
        return Ok(None);
    }
    let ns = &key.namespace;
    let path = format!("/apis/batch/v1/namespaces/{ns}/cronjobs/{}", key.name);
    let jobs_path = format!("/apis/batch/v1/namespaces/{ns}/jobs");
    let Ok(schedule) = parse_schedule(str_at(&cj, "/spec/schedule")) else {
        return Ok(None);
    };
    let now = OffsetDateTime::now_utc();
    let mut jobs = ctx.owned("batch/jobs", meta(&cj, "uid"));
    jobs.sort_by(|a, b| meta(a, "creationTimestamp").cmp(meta(b, "creationTimestamp")));
    let mut active: Vec<Value> = jobs
        .iter()
        .filter(|j| super::job::finished(j).is_none() && !is_deleting(j))
        .cloned()
        .collect();
    let mut last_successful = str_at(&cj, "/status/lastSuccessfulTime").to_string();
    for j in &jobs {
        if super::job::finished(j) == Some("Complete") {
            let t = str_at(j, "/status/completionTime");
            if t > last_successful.as_str() {
                last_successful = t.to_string();
            }
        }
    }
    // History limits.
    for (outcome, default) in [("Complete", 3), ("Failed", 1)] {
        let field = if outcome == "Complete" {
            "/spec/successfulJobsHistoryLimit"
        } else {
            "/spec/failedJobsHistoryLimit"
        };
        let limit = int_at(&cj, field).unwrap_or(default).max(0) as usize;
        let done: Vec<&Value> = jobs
            .iter()
            .filter(|j| super::job::finished(j) == Some(outcome) && !is_deleting(j))
            .collect();
        if done.len() > limit {
            for j in &done[..done.len() - limit] {
                let answer = ctx.kcm.delete(&format!("{jobs_path}/{}", meta(j, "name")),
                    Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}))).await;
                if !answer.ok() && !gone(&answer) {
                    return Err(format!("removing an old job: {}", answer.message()));
                }
                events::record(
                    ctx,
                    events::CRONJOB,
                    &cj,
                    "Normal",
                    "SuccessfulDelete",
                    &format!("Deleted job {}", meta(j, "name")),
                )
                .await;
            }
        }
    }

    let since = parse_rfc3339(str_at(&cj, "/status/lastScheduleTime"))
        .or_else(|| parse_rfc3339(meta(&cj, "creationTimestamp")))
        .unwrap_or(now);
    let suspended = cj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
    let mut last_schedule = str_at(&cj, "/status/lastScheduleTime").to_string();
    if let Some(at) = schedule.latest(since, now).filter(|_| !suspended) {
        let too_late = int_at(&cj, "/spec/startingDeadlineSeconds")
            .is_some_and(|d| at + time::Duration::seconds(d) < now);
        let policy = str_at(&cj, "/spec/concurrencyPolicy");
        let name = format!("{}-{}", key.name, at.unix_timestamp() / 60);
        let exists = jobs.iter().any(|j| meta(j, "name") == name);
        if !too_late && !exists {
            let mut proceed = true;
            if policy == "Forbid" && !active.is_empty() {
                proceed = false;
                events::record(ctx, events::CRONJOB, &cj, "Normal", "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid").await;
            }
            if policy == "Replace" {
                for j in active.drain(..) {
                    let answer = ctx.kcm.delete(&format!("{jobs_path}/{}", meta(&j, "name")),
                        Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}))).await;
                    if !answer.ok() && !gone(&answer) {
                        return Err(format!("replacing a job: {}", answer.message()));
                    }
                    events::record(
                        ctx,
                        events::CRONJOB,
                        &cj,
                        "Normal",
                        "SuccessfulDelete",
                        &format!("Deleted job {}", meta(&j, "name")),
                    )
                    .await;
                }
            }
            if proceed {
                let template = cj
                    .pointer("/spec/jobTemplate")
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                let mut metadata = template
                    .get("metadata")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                metadata.insert("name".into(), json!(name));
                metadata.insert("namespace".into(), json!(ns));
                let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
                annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] =
                    json!(format_rfc3339(at));
                metadata.insert(
                    "ownerReferences".into(),
                    json!([super::util::controller_ref(&cj, "batch/v1", "CronJob")]),
                );
                let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
                    "spec": template.get("spec").cloned().unwrap_or_else(|| json!({}))});
                let answer = ctx.kcm.create(&jobs_path, &job).await;
                if answer.code != 409 {
                    check(&answer, "creating a scheduled job")?;
                    events::record(
                        ctx,
                        events::CRONJOB,
                        &cj,
                        "Normal",
                        "SuccessfulCreate",
                        &format!("Created job {name}"),
                    )
                    .await;
                    active.push(answer.body);
                }
            }
        }
        last_schedule = format_rfc3339(at);
    }
    let mut status = serde_json::Map::new();
    if !active.is_empty() {
        status.insert(
            "active".into(),
            Value::Array(active.iter().map(job_ref).collect()),
        );
    }
    if !last_schedule.is_empty() {
        status.insert("lastScheduleTime".into(), json!(last_schedule));
    }
    if !last_successful.is_empty() {
        status.insert("lastSuccessfulTime".into(), json!(last_successful));
    }
    super::replicaset::write_status(ctx, &path, &cj, Value::Object(status)).await?;
    Ok(schedule.next(now).map(|n| {
        let left = (n - now).whole_milliseconds().max(0);
        Duration::from_millis(u64::try_from(left).unwrap_or(0) + 50)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn schedules_parse_and_match() {
        let s = parse_schedule("*/15 9-17 * * mon-fri").unwrap();
        assert!(s.matches(datetime!(2026-12-07 09:30 UTC))); // a Monday
        assert!(!s.matches(datetime!(2026-12-06 09:30 UTC))); // a Sunday
        assert!(!s.matches(datetime!(2026-12-07 09:31 UTC)));
        let hourly = parse_schedule("@hourly").unwrap();
        assert_eq!(
            hourly.next(datetime!(2026-12-07 09:30:10 UTC)),
            Some(datetime!(2026-12-07 10:00 UTC))
        );
        assert_eq!(
            hourly.latest(
                datetime!(2026-12-07 08:00 UTC),
                datetime!(2026-12-07 09:30 UTC)
            ),
            Some(datetime!(2026-12-07 09:00 UTC))
        );
        // Day of month and day of week both restricted: either matches.
        let either = parse_schedule("0 0 1 * sun").unwrap();
        assert!(either.matches(datetime!(2026-12-06 00:00 UTC)));
        assert!(either.matches(datetime!(2026-12-01 00:00 UTC)));
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        assert_eq!(
            parse_schedule("bad cron").unwrap_err(),
            "expected exactly 5 fields, found 2: [bad cron]"
        );
        assert_eq!(
            parse_schedule("61 * * * *").unwrap_err(),
            "end of range (61) above maximum (59): 61"
        );
        assert!(
            parse_schedule("0 0 * * 7")
                .unwrap_err()
                .contains("above maximum (6)")
        );
        assert!(
            parse_schedule("61 * * * *")
                .unwrap_err()
                .contains("above maximum")
        );
        assert!(
            parse_schedule("x * * * *")
                .unwrap_err()
                .contains("failed to parse int from x")
        );
        assert!(
            parse_schedule("@sometimes")
                .unwrap_err()
                .contains("unrecognized descriptor")
        );
        assert!(parse_schedule("*/0 * * * *").is_err());
    }
}
