//! The differential judge: the same requests against two API servers, compared after
//! normalising only what legitimately differs between two servers (uids, timestamps,
//! resourceVersion values, continue tokens, generated names, ports).
//!
//! Cases are files (`crates/testcluster/differential/*.yaml`), so adding a case is one file:
//!
//! ```yaml
//! description: what the case shows
//! known_difference: optional reason (listed in COMPATIBILITY.md); the case may then differ
//! steps:
//!   - kubectl: [create, configmap, one, --from-literal=a=b]   # -n <case namespace> unless given
//!   - kubectl: [get, configmap, one, -o, json]
//!     save: {RV: /metadata/resourceVersion}                    # JSON pointer into stdout
//!   - kubectl: [apply, --server-side, -f, -]
//!     stdin: |
//!       apiVersion: v1
//!       kind: ConfigMap
//!       ...
//!   - http: {method: PATCH, path: /api/v1/namespaces/$NS/configmaps/one,
//!            content_type: application/merge-patch+json, body: {data: {a: c}}}
//!     expect: {status: 200}                                   # checked on the reference
//!   - http: {method: GET, path: /api/v1/namespaces/$NS/configmaps/one,
//!            accept: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1'}
//!     compare: [status, body]                                 # what must match (default all)
//!   - http: {method: GET, path: /apis, response_headers: [Content-Type],
//!            accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList'}
//!     select: {/items: {key: /metadata/name, values: [apps]}}  # only the items named
//!   - http: {method: POST, path: /api/v1/namespaces/$NS/configmaps,
//!            body: {metadata: {name: big}, data: {}}, fill: {/data/a: {text: x, times: 1048577}}}
//! ```
//!
//! `$NS` is the case's namespace (the same name on both servers); `$NAME` is any value saved
//! by an earlier step (percent-encoded, so it fits in a URL).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use serde_json::Value;

/// One case file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// File stem (set by [`load_cases`]).
    #[serde(skip)]
    pub name: String,
    /// What the case shows.
    pub description: String,
    /// When set, the servers are known to differ here, for this reason (listed in
    /// COMPATIBILITY.md).
    #[serde(default)]
    pub known_difference: Option<String>,
    /// The step (1-based) where the known difference shows; the steps before it must still
    /// agree. Without it, any step may differ.
    #[serde(default)]
    pub known_step: Option<usize>,
    /// The steps, run in order.
    pub steps: Vec<Step>,
}

/// One request: a kubectl invocation or a raw HTTP request through kube-rs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// kubectl arguments (`-n <namespace>` is appended).
    #[serde(default)]
    pub kubectl: Option<Vec<String>>,
    /// kubectl's standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// A raw request.
    #[serde(default)]
    pub http: Option<HttpRequest>,
    /// Which parts must match: `exit`, `stdout`, `stderr` (kubectl) or `status`, `body`
    /// (http). Default: all of them.
    #[serde(default)]
    pub compare: Option<Vec<String>>,
    /// Values to keep for later steps: variable name → JSON pointer into the output.
    #[serde(default)]
    pub save: BTreeMap<String, String>,
    /// Fields left out of the comparison, as JSON pointers where `*` matches any key or
    /// index (e.g. `/items/*/metadata/managedFields`). Only for differences that another
    /// case covers on its own: the file says so, nothing is ignored silently.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Extra normalisation for this step: regex → replacement.
    #[serde(default)]
    pub replace: BTreeMap<String, String>,
    /// Keeps only some items of arrays in the output: JSON pointer of an array (`*`
    /// matches any key or index) → which items to keep. For documents where the reference
    /// lists more than the case is about (kube-apiserver's discovery has groups plumb does
    /// not serve); the case file says what is left out and why.
    #[serde(default)]
    pub select: BTreeMap<String, Selection>,
    /// What the reference server must answer (keeps a case from passing vacuously).
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// Which items of an array a step compares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// A JSON pointer inside an item; an item without it counts as `""`.
    pub key: String,
    /// The values of `key` whose items are kept (in their order in the output).
    pub values: Vec<String>,
}

/// A raw HTTP request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    /// GET, POST, PUT, PATCH, DELETE.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// A body (sent as JSON).
    #[serde(default)]
    pub body: Option<Value>,
    /// The content type (default `application/json`).
    #[serde(default)]
    pub content_type: Option<String>,
    /// The `Accept` header (default `application/json`), e.g. to ask for metadata only.
    #[serde(default)]
    pub accept: Option<String>,
    /// Response headers to compare (as the part `headers`, one `name: value` a line).
    #[serde(default)]
    pub response_headers: Vec<String>,
    /// Long strings put into the body before it is sent: JSON pointer (an object's member,
    /// created if missing) → the text repeated, for sizes a case file should not spell out.
    #[serde(default)]
    pub fill: BTreeMap<String, Fill>,
}

/// A string of `times` copies of `text`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fill {
    /// What is repeated.
    pub text: String,
    /// How many times.
    pub times: usize,
}

/// Expectations on the reference server's answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// kubectl's exit code.
    #[serde(default)]
    pub exit: Option<i32>,
    /// HTTP status.
    #[serde(default)]
    pub status: Option<u16>,
    /// A substring of stdout (kubectl) or the body (http).
    #[serde(default)]
    pub contains: Option<String>,
}

/// A server to run cases against.
#[derive(Debug, Clone)]
pub struct Target {
    /// A label for reports.
    pub label: String,
    /// Its kubeconfig.
    pub kubeconfig: PathBuf,
    /// The kubectl to drive it with.
    pub kubectl: PathBuf,
}

impl Target {
    /// A kube-rs client from the target's kubeconfig (inside a tokio runtime).
    pub async fn client(&self) -> Result<kube::Client, String> {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .map_err(|e| format!("reading {}: {e}", self.kubeconfig.display()))?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| format!("loading {}: {e}", self.kubeconfig.display()))?;
        kube::Client::try_from(config).map_err(|e| format!("client for {}: {e}", self.label))
    }
}

/// The normalised result of one step: part name → text.
pub type StepResult = BTreeMap<&'static str, String>;

/// Why a case could not be run or loaded (as opposed to a difference).
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// A case file is unreadable or malformed.
    #[error("case file {path}: {detail}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A step could not be executed at all.
    #[error("case {case}, step {step} on {target}: {detail}")]
    Run {
        /// The case.
        case: String,
        /// The step number (1-based).
        step: usize,
        /// The target.
        target: String,
        /// What went wrong.
        detail: String,
    },
}

/// Loads every `*.yaml` case in `dir`, sorted by name.
pub fn load_cases(dir: &Path) -> Result<Vec<Case>, CaseError> {
    let load_err = |path: &Path, detail: String| CaseError::Load {
        path: path.to_path_buf(),
        detail,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| load_err(dir, e.to_string()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    let mut cases = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| load_err(&path, e.to_string()))?;
        let mut case: Case =
            serde_saphyr::from_str(&text).map_err(|e| load_err(&path, e.to_string()))?;
        case.name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (index, step) in case.steps.iter().enumerate() {
            if step.kubectl.is_some() == step.http.is_some() {
                return Err(load_err(
                    &path,
                    format!(
                        "step {}: needs exactly one of `kubectl` and `http`",
                        index + 1
                    ),
                ));
            }
            for pattern in step.replace.keys() {
                regex::Regex::new(pattern)
                    .map_err(|e| load_err(&path, format!("step {}: {e}", index + 1)))?;
            }
        }
        if case.steps.is_empty() {
            return Err(load_err(&path, "no steps".to_string()));
        }
        cases.push(case);
    }
    Ok(cases)
}

/// The namespace a case runs in (the same on every target).
pub fn case_namespace(case: &Case) -> String {
    let clean: String = case
        .name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(50)
        .collect();
    format!("diff-{}", clean.trim_matches('-'))
}

/// Runs a case on a target: creates its namespace, runs every step, returns each step's
/// normalised result. `client` is a kube-rs client for the same target.
pub async fn run_case(
    case: &Case,
    target: &Target,
    client: &kube::Client,
) -> Result<Vec<StepResult>, CaseError> {
    let namespace = case_namespace(case);
    let run_err = |step: usize, detail: String| CaseError::Run {
        case: case.name.clone(),
        step,
        target: target.label.clone(),
        detail,
    };
    // Set-up goes through kube-rs with JSON: it is not what the case compares.
    let create_namespace = HttpRequest {
        method: "POST".into(),
        path: "/api/v1/namespaces".into(),
        body: Some(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace},
        })),
        content_type: None,
        accept: None,
        response_headers: Vec::new(),
        fill: BTreeMap::new(),
    };
    let (status, body, _) = http(client, &create_namespace, &BTreeMap::new())
        .await
        .map_err(|e| run_err(0, e))?;
    if status != 201 {
        return Err(run_err(
            0,
            format!("creating namespace {namespace}: {status} {body}"),
        ));
    }
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    vars.insert("NS".to_string(), namespace.clone());
    let mut results = Vec::new();
    for (index, step) in case.steps.iter().enumerate() {
        let number = index + 1;
        let mut result = StepResult::new();
        let raw_output;
        if let Some(args) = &step.kubectl {
            let mut args: Vec<String> = args.iter().map(|a| substitute(a, &vars)).collect();
            // The case namespace unless the step names its own.
            if !args
                .iter()
                .any(|a| a == "-n" || a == "--namespace" || a.starts_with("--namespace="))
            {
                args.push("-n".to_string());
                args.push(namespace.clone());
            }
            let stdin = step.stdin.as_ref().map(|s| substitute(s, &vars));
            let (exit, stdout, stderr) = kubectl(target, &args, stdin.as_deref())
                .await
                .map_err(|e| run_err(number, e))?;
            result.insert("exit", exit.to_string());
            result.insert("stdout", normalise(&stdout, step));
            result.insert("stderr", normalise(&stderr, step));
            raw_output = stdout;
        } else if let Some(request) = &step.http {
            let (status, body, headers) = http(client, request, &vars)
                .await
                .map_err(|e| run_err(number, e))?;
            result.insert("status", status.to_string());
            if !request.response_headers.is_empty() {
                result.insert("headers", headers);
            }
            result.insert("body", normalise(&body, step));
            raw_output = body;
        } else {
            return Err(run_err(number, "neither kubectl nor http".to_string()));
        }
        for (var, pointer) in &step.save {
            let value = serde_json::from_str::<Value>(&raw_output)
                .ok()
                .and_then(|v| v.pointer(pointer).cloned())
                .ok_or_else(|| {
                    run_err(
                        number,
                        format!("cannot save {var}: no {pointer} in the output"),
                    )
                })?;
            let text = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            vars.insert(var.clone(), text);
        }
        results.push(result);
    }
    Ok(results)
}

/// Checks a step's expectations against the reference result; `Err` says what is wrong.
pub fn check_expectations(step: &Step, result: &StepResult) -> Result<(), String> {
    let Some(expect) = &step.expect else {
        return Ok(());
    };
    if let Some(exit) = expect.exit
        && result.get("exit").map(String::as_str) != Some(exit.to_string().as_str())
    {
        return Err(format!(
            "expected exit {exit}, got {:?}",
            result.get("exit")
        ));
    }
    if let Some(status) = expect.status
        && result.get("status").map(String::as_str) != Some(status.to_string().as_str())
    {
        return Err(format!(
            "expected status {status}, got {:?}",
            result.get("status")
        ));
    }
    if let Some(needle) = &expect.contains {
        let haystack = result
            .get("stdout")
            .or_else(|| result.get("body"))
            .cloned()
            .unwrap_or_default();
        if !haystack.contains(needle.as_str()) {
            return Err(format!(
                "expected output containing {needle:?}, got {haystack}"
            ));
        }
    }
    Ok(())
}

/// The first step (1-based) where two runs of a case part, with the differences there as
/// readable text; `None` when they agree. Later steps build on that one, so their
/// differences would mostly be echoes.
pub fn compare(
    case: &Case,
    reference: &[StepResult],
    candidate: &[StepResult],
) -> Option<(usize, Vec<String>)> {
    for (index, step) in case.steps.iter().enumerate() {
        let number = index + 1;
        let (Some(left), Some(right)) = (reference.get(index), candidate.get(index)) else {
            return Some((number, vec![format!("step {number}: missing result")]));
        };
        if let Some(error) = right.get("error") {
            return Some((
                number,
                vec![format!("could not run on the candidate: {error}")],
            ));
        }
        let mut differences = Vec::new();
        for (part, expected) in left {
            if let Some(parts) = &step.compare
                && !parts.iter().any(|p| p == part)
            {
                continue;
            }
            let actual = right.get(part).cloned().unwrap_or_default();
            if &actual != expected {
                let diff = similar::TextDiff::from_lines(expected.as_str(), actual.as_str())
                    .unified_diff()
                    .header("reference", "candidate")
                    .to_string();
                differences.push(format!(
                    "step {number} ({}), {part}:\n{diff}",
                    describe(step)
                ));
            }
        }
        if !differences.is_empty() {
            return Some((number, differences));
        }
    }
    None
}

fn describe(step: &Step) -> String {
    match (&step.kubectl, &step.http) {
        (Some(args), _) => format!("kubectl {}", args.join(" ")),
        (_, Some(request)) => format!("{} {}", request.method, request.path),
        _ => String::new(),
    }
}

fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    // Longest names first, so that $NS does not eat the start of $NSX.
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        out = out.replace(&format!("${name}"), &percent_encode(&vars[name]));
    }
    out
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn kubectl(
    target: &Target,
    args: &[String],
    stdin: Option<&str>,
) -> Result<(i32, String, String), String> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(&target.kubectl)
        .env("KUBECONFIG", &target.kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {}: {e}", target.kubectl.display()))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .await
            .map_err(|e| format!("writing kubectl's stdin: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("waiting for kubectl: {e}"))?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// Sends a request; answers its status, body and the response headers it names.
async fn http(
    client: &kube::Client,
    request: &HttpRequest,
    vars: &BTreeMap<String, String>,
) -> Result<(u16, String, String), String> {
    let path = substitute(&request.path, vars);
    let body = match &request.body {
        Some(value) => {
            let text = substitute(&value.to_string(), vars);
            if request.fill.is_empty() {
                text.into_bytes()
            } else {
                let mut body: Value = serde_json::from_str(&text)
                    .map_err(|e| format!("the body after substitution: {e}"))?;
                for (pointer, fill) in &request.fill {
                    let (parent, member) = pointer
                        .rsplit_once('/')
                        .ok_or_else(|| format!("fill {pointer:?} is not a JSON pointer"))?;
                    let slot = body
                        .pointer_mut(parent)
                        .and_then(Value::as_object_mut)
                        .ok_or_else(|| format!("fill {pointer:?}: no object at {parent:?}"))?;
                    slot.insert(
                        member.to_string(),
                        Value::String(fill.text.repeat(fill.times)),
                    );
                }
                body.to_string().into_bytes()
            }
        }
        None => Vec::new(),
    };
    let content_type = request
        .content_type
        .as_deref()
        .unwrap_or("application/json");
    let built = http::Request::builder()
        .method(request.method.as_str())
        .uri(path.as_str())
        .header("Content-Type", content_type)
        .header(
            "Accept",
            request.accept.as_deref().unwrap_or("application/json"),
        )
        .body(kube::client::Body::from(body))
        .map_err(|e| format!("building {} {path}: {e}", request.method))?;
    let response = client
        .send(built)
        .await
        .map_err(|e| format!("{} {path}: {e}", request.method))?;
    let status = response.status().as_u16();
    let headers = request
        .response_headers
        .iter()
        .map(|name| {
            let values: Vec<&str> = response
                .headers()
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let value = if values.is_empty() {
                "<absent>".to_string()
            } else {
                values.join(", ")
            };
            format!("{}: {value}", name.to_ascii_lowercase())
        })
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| format!("reading the body of {} {path}: {e}", request.method))?;
    Ok((
        status,
        String::from_utf8_lossy(&bytes).into_owned(),
        headers,
    ))
}

/// Normalises one output: JSON documents (and JSON lines, as watch streams send them)
/// structurally, everything else textually.
pub fn normalise(text: &str, step: &Step) -> String {
    let trimmed = text.trim();
    let prepare = |mut value: Value| {
        for (pointer, selection) in &step.select {
            let segments: Vec<&str> = pointer
                .trim_start_matches('/')
                .split('/')
                .filter(|s| !s.is_empty())
                .collect();
            retain_selected(&mut value, &segments, selection);
        }
        for pointer in &step.ignore {
            let segments: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
            remove_matching(&mut value, &segments);
        }
        pretty(normalise_json(value))
    };
    let mut out = if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        prepare(value)
    } else if !trimmed.is_empty()
        && trimmed
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    {
        trimmed
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(prepare)
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        normalise_text(trimmed)
    };
    for (pattern, replacement) in &step.replace {
        if let Ok(re) = regex::Regex::new(pattern) {
            out = re.replace_all(&out, replacement.as_str()).into_owned();
        }
    }
    out
}

/// Keeps, in every array the pointer segments match, only the selected items. An array
/// the selection empties is removed from its object, as a server leaves out a list it has
/// nothing for (kube-apiserver omits `subresources` of a resource without any).
fn retain_selected(value: &mut Value, segments: &[&str], selection: &Selection) {
    /// Whether the selection emptied `value` (an array that had items).
    fn walk(value: &mut Value, segments: &[&str], selection: &Selection) -> bool {
        let Some((first, rest)) = segments.split_first() else {
            let Value::Array(items) = value else {
                return false;
            };
            let had_items = !items.is_empty();
            items.retain(|item| {
                let key = match item.pointer(&selection.key) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                };
                selection.values.contains(&key)
            });
            return had_items && items.is_empty();
        };
        match value {
            Value::Object(map) => {
                let emptied: Vec<String> = map
                    .iter_mut()
                    .filter(|(key, _)| *first == "*" || key.as_str() == *first)
                    .filter_map(|(key, child)| walk(child, rest, selection).then(|| key.clone()))
                    .collect();
                for key in emptied {
                    map.remove(&key);
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter_mut().enumerate() {
                    if *first == "*" || index.to_string() == *first {
                        walk(child, rest, selection);
                    }
                }
            }
            _ => {}
        }
        false
    }
    walk(value, segments, selection);
}

/// Removes every field matched by the pointer segments (`*` matches any key or index).
fn remove_matching(value: &mut Value, segments: &[&str]) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    if rest.is_empty() {
        match value {
            Value::Object(map) if *first == "*" => map.clear(),
            Value::Object(map) => {
                map.remove(*first);
            }
            Value::Array(items) if *first == "*" => items.clear(),
            _ => {}
        }
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if *first == "*" || key == first {
                    remove_matching(child, rest);
                }
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter_mut().enumerate() {
                if *first == "*" || index.to_string() == *first {
                    remove_matching(child, rest);
                }
            }
        }
        _ => {}
    }
}

fn pretty(value: Value) -> String {
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// Fields whose values are per-server by nature.
fn normalise_json(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let generated = map.contains_key("generateName");
            let mut out = serde_json::Map::new();
            // Key order carries no meaning in JSON: compare sorted.
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, value) in entries {
                let value = match key.as_str() {
                    "uid" | "resourceVersion" if value.is_string() => {
                        Value::String(format!("<{key}>"))
                    }
                    "continue" if value.as_str().is_some_and(|s| !s.is_empty()) => {
                        Value::String("<continue>".into())
                    }
                    "name" if generated && value.is_string() => Value::String("<generated>".into()),
                    // Kubernetes orders the entries by their time in seconds, which is
                    // normalised away (and depends on when each step ran): compare them
                    // as a set.
                    "managedFields" if value.is_array() => {
                        let mut entries: Vec<Value> = match normalise_json(value) {
                            Value::Array(entries) => entries,
                            other => vec![other],
                        };
                        entries.sort_by_cached_key(Value::to_string);
                        Value::Array(entries)
                    }
                    _ => normalise_json(value),
                };
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalise_json).collect()),
        Value::String(s) => Value::String(normalise_text(&s)),
        other => other,
    }
}

/// Timestamps, uids, loopback ports and kubectl's AGE column.
fn normalise_text(text: &str) -> String {
    use std::sync::OnceLock;
    static PATTERNS: OnceLock<Vec<(regex::Regex, &'static str)>> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        [
            (
                r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})",
                "<time>",
            ),
            (
                r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                "<uid>",
            ),
            (r"127\.0\.0\.1:\d+", "<server>"),
            (
                r#"resourceVersion: "\d+""#,
                "resourceVersion: <resourceVersion>",
            ),
            (r"(?m)\b\d+(s|m|h|d)(\d+(s|m|h))?\s*$", "<age>"),
            (r"\b\d+(s|m|h|d)(\d+(s|m|h))?(\s{2,})", "<age>$3"),
        ]
        .into_iter()
        .filter_map(|(p, r)| regex::Regex::new(p).ok().map(|re| (re, r)))
        .collect()
    });
    let mut out = text.to_string();
    for (re, replacement) in patterns {
        out = re.replace_all(&out, *replacement).into_owned();
    }
    out
}

/// The tally of a differential run.
#[derive(Debug, Default)]
pub struct Report {
    /// Cases whose results matched.
    pub passed: Vec<String>,
    /// Cases that differ although no difference is known: (case, differences).
    pub failed: Vec<(String, Vec<String>)>,
    /// Cases that differ as listed: (case, reason, differences).
    pub known: Vec<(String, String, Vec<String>)>,
    /// Cases marked as known differences that now match (the mark can go).
    pub known_but_passing: Vec<String>,
    /// Cases whose reference run broke its own expectations (a broken case).
    pub broken: Vec<(String, String)>,
}

impl Report {
    /// One line: `differential: P/T cases agree (K known differences, F unexpected)`.
    pub fn summary(&self) -> String {
        let total = self.passed.len() + self.failed.len() + self.known.len() + self.broken.len();
        format!(
            "differential: {}/{} cases agree ({} known differences, {} unexpected differences, {} broken cases)",
            self.passed.len(),
            total,
            self.known.len(),
            self.failed.len(),
            self.broken.len()
        )
    }

    /// Records one case's outcome.
    pub fn record(&mut self, case: &Case, reference: &[StepResult], candidate: &[StepResult]) {
        for (index, (step, result)) in case.steps.iter().zip(reference).enumerate() {
            if let Err(e) = check_expectations(step, result) {
                let detail = result
                    .get("stderr")
                    .filter(|s| !s.is_empty())
                    .or_else(|| result.get("body"))
                    .cloned()
                    .unwrap_or_default();
                self.broken.push((
                    case.name.clone(),
                    format!(
                        "step {} ({}): {e}; output: {detail}",
                        index + 1,
                        describe(step)
                    ),
                ));
                return;
            }
        }
        let name = case.name.clone();
        match (compare(case, reference, candidate), &case.known_difference) {
            (None, None) => self.passed.push(name),
            (None, Some(_)) => {
                self.passed.push(name.clone());
                self.known_but_passing.push(name);
            }
            (Some((_, differences)), None) => self.failed.push((name, differences)),
            (Some((step, differences)), Some(reason)) => match case.known_step {
                Some(known) if known != step => {
                    let mut differences = differences;
                    differences.insert(
                        0,
                        format!("the known difference is at step {known}, but step {step} differs"),
                    );
                    self.failed.push((name, differences));
                }
                _ => self.known.push((name, reason.clone(), differences)),
            },
        }
    }
}
