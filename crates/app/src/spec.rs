//! Checks of an Application's spec that need no I/O (`InvalidSpecError` conditions).

use plumb_model::{Application, ApplicationSource};

/// The URL and name Argo CD gives the cluster it runs in.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
pub const IN_CLUSTER_NAME: &str = "in-cluster";

/// Every problem with the spec, each a sentence naming the field.
pub fn validate(app: &Application) -> Vec<String> {
    let mut problems = Vec::new();
    let spec = &app.spec;
    let sources = spec.effective_sources();
    if sources.is_empty() {
        problems.push("spec.source or spec.sources is required".to_string());
    }
    for (index, source) in sources.iter().enumerate() {
        let field = if spec.sources.is_empty() {
            "spec.source".to_string()
        } else {
            format!("spec.sources[{index}]")
        };
        problems.extend(validate_source(&field, source));
    }
    let destination = &spec.destination;
    match (destination.server.is_empty(), destination.name.is_empty()) {
        (true, true) => problems.push(
            "spec.destination: set server (e.g. https://kubernetes.default.svc) or name"
                .to_string(),
        ),
        (false, false) => problems.push(
            "spec.destination: server and name are both set; set only one of them".to_string(),
        ),
        _ => {}
    }
    let server = &destination.server;
    if !(server.is_empty() || server.starts_with("https://") || server.starts_with("http://")) {
        problems.push(format!(
            "spec.destination.server {server:?} is not an http(s) URL"
        ));
    }
    problems
}

fn validate_source(field: &str, source: &ApplicationSource) -> Vec<String> {
    let mut problems = Vec::new();
    if source.repo_url.trim().is_empty() {
        problems.push(format!("{field}.repoURL is required"));
    }
    if !source.path.is_empty()
        && let Err(error) = plumb_source::paths::check_relative(&source.path)
    {
        problems.push(format!("{field}.path {:?}: {error}", source.path));
    }
    if !source.chart.is_empty() && !source.path.is_empty() {
        problems.push(format!(
            "{field}: chart and path are both set; a Helm repository source names a chart, a Git source a path"
        ));
    }
    problems
}

/// The sources to render: the operation's (a rollback's or a sync to another revision) or
/// the spec's, with an operation's revisions put in place of the target revisions.
pub fn sources_for(
    app: &Application,
    override_sources: &[ApplicationSource],
    override_revisions: &[String],
) -> Vec<ApplicationSource> {
    let mut sources: Vec<ApplicationSource> = if override_sources.is_empty() {
        app.spec.effective_sources().into_iter().cloned().collect()
    } else {
        override_sources.to_vec()
    };
    for (source, revision) in sources.iter_mut().zip(override_revisions) {
        if !revision.is_empty() {
            source.target_revision = revision.clone();
        }
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(yaml: &str) -> Application {
        serde_saphyr::from_str(yaml).expect("application")
    }

    #[test]
    fn a_complete_spec_has_no_problems() {
        let app = app(
            "metadata: {name: a}\nspec:\n  source: {repoURL: https://git.example/a.git, path: apps/a}\n  destination: {server: https://kubernetes.default.svc, namespace: a}\n",
        );
        assert!(validate(&app).is_empty(), "{:?}", validate(&app));
    }

    #[test]
    fn each_problem_names_its_field() {
        let app = app(
            "metadata: {name: a}\nspec:\n  source: {repoURL: '', path: ../../etc}\n  destination: {}\n",
        );
        let problems = validate(&app);
        assert!(
            problems.iter().any(|p| p.contains("spec.source.repoURL")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("spec.source.path")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("spec.destination")),
            "{problems:?}"
        );
    }

    #[test]
    fn no_source_and_both_destination_fields_are_refused() {
        let app = app("metadata: {name: a}\nspec:\n  destination: {server: https://x, name: x}\n");
        let problems = validate(&app);
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn operation_revisions_replace_target_revisions() {
        let app = app(
            "metadata: {name: a}\nspec:\n  sources:\n  - {repoURL: https://g/a.git, targetRevision: main}\n  - {repoURL: https://g/b.git, targetRevision: v1}\n  destination: {name: in-cluster}\n",
        );
        let sources = sources_for(&app, &[], &["abc".to_string(), String::new()]);
        assert_eq!(sources[0].target_revision, "abc");
        assert_eq!(sources[1].target_revision, "v1");
    }
}
