//! Which representation of a resource a request's `Accept` header asks for: the object
//! itself, a `Table`, or only its metadata (`PartialObjectMetadata`,
//! `PartialObjectMetadataList`), negotiated the way kube-apiserver does.
//!
//! kube-apiserver answers in two layers, and so does this module:
//! 1. its HTTP router (go-restful) refuses an `Accept` none of whose media types (without
//!    parameters) it produces: `application/json`, `application/yaml`,
//!    `application/vnd.kubernetes.protobuf` or `*/*`;
//! 2. its negotiation then takes the clauses by quality and specificity and picks the first
//!    one it can serve. A clause with `as`, `g` or `v` asks for a conversion; only
//!    `Table`, `PartialObjectMetadata` and `PartialObjectMetadataList` in `meta.k8s.io/v1`
//!    or `v1beta1` exist (Tables only as JSON or YAML), other clauses are passed over, and
//!    when none is left the answer is `406 Not Acceptable`.
//!
//! The embedded server writes every answer as JSON (which is also YAML); a protobuf clause
//! it accepts is answered in JSON, as all its answers are.

use crate::api_error::ApiError;

/// The media types kube-apiserver lists as the ones it produces.
const PRODUCED: [&str; 3] = [
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

/// The `meta.k8s.io` version a converted answer is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaVersion {
    V1,
    V1beta1,
}

impl MetaVersion {
    /// `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`.
    pub(crate) fn api_version(self) -> &'static str {
        match self {
            MetaVersion::V1 => "meta.k8s.io/v1",
            MetaVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// What the answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Representation {
    /// The object (or list) itself.
    Object,
    /// A server-side printed `Table`.
    Table(MetaVersion),
    /// `PartialObjectMetadata`: kind, apiVersion and the object's whole metadata.
    Partial(MetaVersion),
    /// `PartialObjectMetadataList`: the list's metadata and each item as
    /// `PartialObjectMetadata`.
    PartialList(MetaVersion),
}

/// One clause of an `Accept` header.
#[derive(Debug)]
struct Clause<'a> {
    type_: &'a str,
    subtype: &'a str,
    quality: f64,
    params: Vec<(&'a str, &'a str)>,
}

impl Clause<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
    }
}

/// Parses the clauses as kube-apiserver does (a clause whose media range is not
/// `type/subtype` or `*` is dropped; a `q` that is not a number counts as 0), ordered by
/// quality, then specific types before wildcards.
fn clauses(header: &str) -> Vec<Clause<'_>> {
    let mut out: Vec<Clause<'_>> = header
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.trim_matches(' ').split(';');
            let range = pieces.next().unwrap_or("");
            let (type_, subtype) = match range.split('/').collect::<Vec<_>>().as_slice() {
                [t] if t.trim_matches(' ') == "*" => ("*", "*"),
                [t, s] => (t.trim_matches(' '), s.trim_matches(' ')),
                _ => return None,
            };
            let mut quality = 1.0;
            let mut params = Vec::new();
            for param in pieces {
                let Some((key, value)) = param.split_once('=') else {
                    continue;
                };
                let key = key.trim_matches(' ');
                if key == "q" {
                    quality = value.parse::<f64>().unwrap_or(0.0);
                } else {
                    params.push((key, value.trim_matches(' ')));
                }
            }
            Some(Clause {
                type_,
                subtype,
                quality,
                params,
            })
        })
        .collect();
    // Stable: clauses that compare equal keep the client's order.
    out.sort_by(|a, b| {
        b.quality
            .total_cmp(&a.quality)
            .then((a.type_ == "*").cmp(&(b.type_ == "*")))
            .then((a.subtype == "*").cmp(&(b.subtype == "*")))
    });
    out
}

/// The representation a clause asks for of a media type it matches, if the server can
/// produce it.
fn representation(clause: &Clause<'_>, subtype: &str) -> Option<Representation> {
    if let Some(stream) = clause.param("stream")
        && !stream.is_empty()
        && (stream != "watch" || subtype == "yaml")
    {
        return None;
    }
    let (kind, group, version) = (clause.param("as"), clause.param("g"), clause.param("v"));
    if kind.is_none() && group.is_none() && version.is_none() {
        return Some(Representation::Object);
    }
    let version = match (group, version) {
        (Some("meta.k8s.io"), Some("v1")) => MetaVersion::V1,
        (Some("meta.k8s.io"), Some("v1beta1")) => MetaVersion::V1beta1,
        _ => return None,
    };
    match kind {
        Some("Table") if subtype == "json" || subtype == "yaml" => {
            Some(Representation::Table(version))
        }
        Some("PartialObjectMetadata") => Some(Representation::Partial(version)),
        Some("PartialObjectMetadataList") => Some(Representation::PartialList(version)),
        _ => None,
    }
}

/// The representation a resource request's `Accept` header asks for, or the `406` that
/// kube-apiserver answers when it cannot produce any of them.
pub(crate) fn negotiate(accept: &str) -> Result<Representation, ApiError> {
    if accept.is_empty() {
        return Ok(Representation::Object);
    }
    let routable = accept.split(',').any(|part| {
        let media_type = part.split(';').next().unwrap_or("").trim_matches(' ');
        media_type == "*/*" || PRODUCED.contains(&media_type)
    });
    if !routable {
        return Err(ApiError::not_acceptable_media_type(&PRODUCED));
    }
    for clause in clauses(accept) {
        for produced in PRODUCED {
            let (type_, subtype) = produced.split_once('/').unwrap_or((produced, ""));
            // `type/subtype`, `type/*` or `*/*` (kube-apiserver ignores `*/subtype`).
            let matches = match (clause.type_, clause.subtype) {
                ("*", "*") => true,
                (t, "*") => t == type_,
                (t, s) => t == type_ && s == subtype,
            };
            if matches && let Some(found) = representation(&clause, subtype) {
                return Ok(found);
            }
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: {}",
        PRODUCED.join(", ")
    )))
}

/// What a discovery document is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiscoveryAnswer {
    /// The plain document (`APIVersions`, `APIGroupList`, `APIGroup`, `APIResourceList`).
    Plain,
    /// The aggregated `APIGroupDiscoveryList` (`apidiscovery.k8s.io/v2`).
    Aggregated,
}

/// Whether a clause asks for the aggregated discovery list kube-apiserver serves: only
/// `apidiscovery.k8s.io/v2` (v2beta1 is no longer served since Kubernetes 1.33).
fn asks_for_aggregated(clause: &Clause<'_>) -> bool {
    clause.param("as") == Some("APIGroupDiscoveryList")
        && clause.param("g") == Some("apidiscovery.k8s.io")
        && clause.param("v") == Some("v2")
}

/// Whether a clause's media range covers one of the produced media types.
fn covers_produced(clause: &Clause<'_>) -> bool {
    PRODUCED.iter().any(|produced| {
        let (type_, subtype) = produced.split_once('/').unwrap_or((produced, ""));
        match (clause.type_, clause.subtype) {
            ("*", "*") => true,
            (t, "*") => t == type_,
            (t, s) => t == type_ && s == subtype,
        }
    })
}

/// The answer to a discovery request's `Accept` header, as kube-apiserver gives it.
/// `aggregated_here` is true at `/api` and `/apis`: there, any clause asking for the
/// aggregated list in a producible media type wins whatever its quality or position (kube-
/// apiserver looks for one before anything else, even past media types it cannot route).
/// Otherwise the plain document is negotiated like a resource: clauses asking for any
/// conversion are passed over, and with none left the answer is `406 Not Acceptable`.
pub(crate) fn negotiate_discovery(
    accept: &str,
    aggregated_here: bool,
) -> Result<DiscoveryAnswer, ApiError> {
    if accept.is_empty() {
        return Ok(DiscoveryAnswer::Plain);
    }
    if aggregated_here
        && clauses(accept)
            .iter()
            .any(|clause| covers_produced(clause) && asks_for_aggregated(clause))
    {
        return Ok(DiscoveryAnswer::Aggregated);
    }
    match negotiate(accept)? {
        Representation::Object => Ok(DiscoveryAnswer::Plain),
        // Tables and metadata exist for objects, not for discovery documents.
        Representation::Table(_) | Representation::Partial(_) | Representation::PartialList(_) => {
            let plain_left = clauses(accept).iter().any(|clause| {
                covers_produced(clause)
                    && representation(clause, "json") == Some(Representation::Object)
            });
            if plain_left {
                Ok(DiscoveryAnswer::Plain)
            } else {
                Err(ApiError::not_acceptable(format!(
                    "only the following media types are accepted: {}",
                    PRODUCED.join(", ")
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MetaVersion::{V1, V1beta1};
    use super::Representation::*;
    use super::*;

    const PARTIAL: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

    fn ok(accept: &str) -> Representation {
        negotiate(accept).unwrap_or_else(|e| panic!("{accept:?}: {}", e.message))
    }

    fn refused(accept: &str) -> String {
        match negotiate(accept) {
            Ok(r) => panic!("{accept:?} was accepted as {r:?}"),
            Err(e) => {
                assert_eq!((e.code, e.reason), (406, "NotAcceptable"), "{accept:?}");
                e.message
            }
        }
    }

    // Each answer below is what kube-apiserver 1.37 answered to the same Accept header.
    #[test]
    fn conversions_in_meta_v1_and_v1beta1_are_produced() {
        assert_eq!(ok(""), Object);
        assert_eq!(ok("application/json"), Object);
        assert_eq!(ok("*/*"), Object);
        assert_eq!(ok("application/json;stream=watch"), Object);
        assert_eq!(ok(PARTIAL), Partial(V1));
        assert_eq!(ok(&format!("{PARTIAL}, application/json")), Partial(V1));
        assert_eq!(
            ok("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
            PartialList(V1)
        );
        assert_eq!(
            ok("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1"),
            Partial(V1beta1)
        );
        assert_eq!(
            ok("application/json; as=PartialObjectMetadata; g=meta.k8s.io; v=v1"),
            Partial(V1)
        );
        assert_eq!(
            ok("application/json ;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
            Partial(V1)
        );
        assert_eq!(
            ok("*/*;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
            Partial(V1)
        );
        assert_eq!(
            ok("application/yaml;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
            Partial(V1)
        );
        assert_eq!(
            ok(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ),
            Table(V1)
        );
        assert_eq!(
            ok("application/json;as=Table;g=meta.k8s.io;v=v1beta1"),
            Table(V1beta1)
        );
    }

    #[test]
    fn clauses_the_server_cannot_produce_fall_back_to_the_next() {
        let fallback = |first: &str| ok(&format!("{first}, application/json"));
        assert_eq!(
            fallback("application/json;as=Foo;g=meta.k8s.io;v=v1"),
            Object
        );
        assert_eq!(
            fallback("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2"),
            Object
        );
        assert_eq!(
            fallback("application/json;as=PartialObjectMetadata;g=example.com;v=v1"),
            Object
        );
        // Tables exist only as JSON and YAML.
        assert_eq!(
            ok(&format!(
                "application/vnd.kubernetes.protobuf;as=Table;g=meta.k8s.io;v=v1,{PARTIAL}"
            )),
            Partial(V1)
        );
        // Higher quality first, whatever the order.
        assert_eq!(
            ok(&format!("application/json;q=0.5, {PARTIAL}")),
            Partial(V1)
        );
        // client-go's metadata client: the protobuf clause is answered (in JSON).
        assert_eq!(
            ok(&format!(
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,{PARTIAL},application/json"
            )),
            Partial(V1)
        );
    }

    #[test]
    fn an_accept_with_nothing_producible_is_not_acceptable() {
        let only = "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf";
        for accept in [
            "application/json;as=Foo;g=meta.k8s.io;v=v1",
            "application/json;as=PartialObjectMetadata;g=example.com;v=v1",
            "application/json;as=PartialObjectMetadata",
            "application/json;as=Table;g=meta.k8s.io",
            "application/json;g=meta.k8s.io;v=v1",
            "application/vnd.kubernetes.protobuf;as=Table;g=meta.k8s.io;v=v1",
            "application/json;stream=foo",
            "text/html, application/json;as=Foo;g=meta.k8s.io;v=v1",
        ] {
            assert_eq!(refused(accept), only, "{accept:?}");
        }
        let unroutable = "406: Not Acceptable\n\nAvailable representations: application/json, application/yaml, application/vnd.kubernetes.protobuf";
        for accept in ["text/html", "application/*", "APPLICATION/JSON"] {
            assert_eq!(refused(accept), unroutable, "{accept:?}");
        }
    }

    const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

    // What kube-apiserver 1.37 answered at /api and /apis (aggregated_here) and at the
    // other discovery paths.
    #[test]
    fn an_aggregated_clause_anywhere_wins_at_the_roots() {
        use DiscoveryAnswer::{Aggregated, Plain};
        let at_root = |accept: &str| {
            negotiate_discovery(accept, true)
                .unwrap_or_else(|e| panic!("{accept:?}: {}", e.message))
        };
        for accept in [
            AGGREGATED.to_string(),
            format!("{AGGREGATED},application/json"),
            format!("application/json, {AGGREGATED}"),
            format!("application/json;q=0.9, {AGGREGATED}"),
            format!("{AGGREGATED};q=0, application/json"),
            format!("text/html, {AGGREGATED}"),
            format!(
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList, {AGGREGATED}"
            ),
            "*/*;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList".to_string(),
            "application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList".to_string(),
            "application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList".to_string(),
            format!("{AGGREGATED};foo=bar"),
        ] {
            assert_eq!(at_root(&accept), Aggregated, "{accept:?}");
        }
        for accept in [
            "",
            "application/json",
            "*/*",
            "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList, application/json",
            "application/json;as=Table;g=meta.k8s.io;v=v1, application/json",
        ] {
            assert_eq!(at_root(accept), Plain, "{accept:?}");
        }
        // Elsewhere the aggregated clause is passed over like any unknown conversion.
        assert_eq!(
            negotiate_discovery(&format!("{AGGREGATED}, application/json"), false).ok(),
            Some(Plain)
        );
    }

    #[test]
    fn discovery_refuses_what_it_cannot_produce() {
        let only = "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf";
        for (accept, aggregated_here) in [
            (
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
                true,
            ),
            (
                "application/json;g=APIDISCOVERY.k8s.io;v=v2;as=APIGroupDiscoveryList",
                true,
            ),
            (
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscovery",
                true,
            ),
            ("application/json;as=APIGroupDiscoveryList", true),
            ("application/json;as=Table;g=meta.k8s.io;v=v1", true),
            (
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                false,
            ),
            (AGGREGATED, false),
        ] {
            match negotiate_discovery(accept, aggregated_here) {
                Ok(answer) => panic!("{accept:?} was answered with {answer:?}"),
                Err(e) => assert_eq!((e.code, e.message.as_str()), (406, only), "{accept:?}"),
            }
        }
        let refused = negotiate_discovery("text/html", true).err().map(|e| e.code);
        assert_eq!(refused, Some(406));
    }
}
