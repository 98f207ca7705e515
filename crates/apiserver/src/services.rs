//! What kube-apiserver's Service registry allocates: a cluster IP from the service CIDR
//! and node ports from 30000–32767, for Services that need them. A requested IP or port is
//! honoured when it is free and in range, refused with kube-apiserver's 422 otherwise.
//!
//! What is in use is read from the stored Services at each allocation, so a deleted
//! Service's IP is free again at once and nothing can leak across restarts. What a write
//! has allocated is held in [`Allocator`] under the Service's name until the write is
//! stored or refused ([`Allocator::release`]), so two concurrent creates never get the
//! same IP; a hold whose release was missed (a write that never reached the store, such
//! as a dry-run) lapses after a while, and a retry of the same Service replaces its own.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api_error::Cause;

/// The range node ports come from (kube-apiserver's `--service-node-port-range` default).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<u16> = 30000..=32767;

/// How long an allocation not yet seen in the store is held for its create.
const HOLD: Duration = Duration::from_secs(30);

/// An IPv4 CIDR: the range Service cluster IPs come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceCidr {
    network: u32,
    prefix: u8,
}

impl ServiceCidr {
    /// kube-apiserver's built-in default is 10.0.0.0/24; plumb takes kubeadm's larger range
    /// so that a development cluster does not run out at 253 Services.
    pub const DEFAULT: ServiceCidr = ServiceCidr {
        network: u32::from_be_bytes([10, 96, 0, 0]),
        prefix: 12,
    };

    /// Parses `a.b.c.d/n` (IPv4, 8 ≤ n ≤ 30).
    pub fn parse(text: &str) -> Result<ServiceCidr, String> {
        let (address, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("service CIDR {text:?}: expected address/prefix"))?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| format!("service CIDR {text:?}: {address:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("service CIDR {text:?}: the prefix must be 8 to 30"))?;
        let mask = u32::MAX << (32 - u32::from(prefix));
        Ok(ServiceCidr {
            network: u32::from(address) & mask,
            prefix,
        })
    }

    fn size(self) -> u32 {
        1u32 << (32 - u32::from(self.prefix))
    }

    /// Whether `ip` is an address a Service may have: in the range, neither its network
    /// nor its broadcast address.
    fn usable(self, ip: u32) -> bool {
        ip > self.network && ip < self.network + self.size() - 1
    }

    /// The first usable address (kube-apiserver gives it to the `kubernetes` Service).
    pub fn first(self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }
}

impl std::fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

/// What is in use right now, from the stored Services.
#[derive(Debug, Default)]
pub struct InUse {
    pub ips: BTreeSet<u32>,
    pub node_ports: BTreeSet<u16>,
}

impl InUse {
    /// Reads the IPs and node ports one stored Service holds.
    pub fn add_service(&mut self, service: &Value) {
        let spec = service.get("spec");
        for ip in string_items(spec.and_then(|s| s.get("clusterIPs")))
            .into_iter()
            .chain(
                spec.and_then(|s| s.get("clusterIP"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
            )
        {
            if let Ok(ip) = ip.parse::<Ipv4Addr>() {
                self.ips.insert(u32::from(ip));
            }
        }
        for port in ports(spec) {
            if let Some(node_port) = node_port_of(port) {
                self.node_ports.insert(node_port);
            }
        }
    }
}

/// Allocations made for writes that may not be stored yet, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Allocator {
    held: Mutex<HashMap<String, Held>>,
}

#[derive(Debug)]
struct Held {
    ips: Vec<u32>,
    ports: Vec<u16>,
    at: Instant,
}

impl Allocator {
    /// Ends the hold of `key`'s allocations (its write was stored or refused).
    pub fn release(&self, key: &str) {
        lock(&self.held).remove(key);
    }

    /// Fills in a Service's cluster IP and node ports (create: `old` is `None`; update:
    /// the stored Service, whose node ports an update that leaves them out keeps).
    /// `in_use` must not include the Service itself; `key` is its `namespace/name`.
    pub fn assign(
        &self,
        cidr: ServiceCidr,
        mut in_use: InUse,
        old: Option<&Value>,
        key: &str,
        service: &mut Value,
    ) -> Result<(), Vec<Cause>> {
        let now = Instant::now();
        let mut held = lock(&self.held);
        held.retain(|_, h| now.duration_since(h.at) < HOLD);
        held.remove(key);
        for h in held.values() {
            in_use.ips.extend(&h.ips);
            in_use.node_ports.extend(&h.ports);
        }
        let mut mine = Held {
            ips: Vec::new(),
            ports: Vec::new(),
            at: now,
        };
        let Some(spec) = service.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let service_type = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if service_type == "ExternalName" {
            return Ok(());
        }
        let mut causes = Vec::new();
        let has_ip = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .is_some_and(|ip| !ip.is_empty());
        // An update allocates only for a Service that had none (an ExternalName one
        // turned into another type); the IP it has is checked on create only.
        if old.is_none() || !has_ip {
            match cluster_ip(cidr, &in_use.ips, spec) {
                Ok(Some(ip)) => {
                    mine.ips.push(ip);
                    let text = Ipv4Addr::from(ip).to_string();
                    spec.insert("clusterIP".into(), json!(text));
                    spec.insert("clusterIPs".into(), json!([text]));
                    spec.entry("ipFamilies").or_insert_with(|| json!(["IPv4"]));
                    spec.entry("ipFamilyPolicy")
                        .or_insert_with(|| json!("SingleStack"));
                }
                Ok(None) => {}
                Err(cause) => causes.push(cause),
            }
        }
        if matches!(service_type.as_str(), "NodePort" | "LoadBalancer") {
            let wants_ports = service_type == "NodePort"
                || spec.get("allocateLoadBalancerNodePorts") != Some(&json!(false));
            let old_ports: Vec<Value> = ports(old.and_then(|o| o.get("spec")))
                .into_iter()
                .cloned()
                .collect();
            let kept: BTreeSet<u16> = old_ports.iter().filter_map(node_port_of).collect();
            if let Some(Value::Array(list)) = spec.get_mut("ports") {
                for (index, port) in list.iter_mut().enumerate() {
                    let Some(port) = port.as_object_mut() else {
                        continue;
                    };
                    let requested = port.get("nodePort").and_then(Value::as_u64);
                    let requested = match requested {
                        Some(0) | None => None,
                        Some(n) => Some(n),
                    };
                    let field = format!("spec.ports[{index}].nodePort");
                    match requested {
                        Some(n) => {
                            let Ok(n) = u16::try_from(n) else {
                                causes.push(invalid_port(&field, n, "provided port is not in the valid range. The range of valid ports is 30000-32767"));
                                continue;
                            };
                            if kept.contains(&n) {
                                continue;
                            }
                            if !NODE_PORT_RANGE.contains(&n) {
                                causes.push(invalid_port(&field, u64::from(n), "provided port is not in the valid range. The range of valid ports is 30000-32767"));
                            } else if in_use.node_ports.contains(&n) {
                                causes.push(invalid_port(
                                    &field,
                                    u64::from(n),
                                    "provided port is already allocated",
                                ));
                            } else {
                                in_use.node_ports.insert(n);
                                mine.ports.push(n);
                            }
                        }
                        None => {
                            // An update that leaves a port's nodePort out keeps the one
                            // it had (same port and protocol).
                            if let Some(kept) = old_ports
                                .iter()
                                .find(|o| same_port(o, port))
                                .and_then(node_port_of)
                            {
                                port.insert("nodePort".into(), json!(kept));
                                continue;
                            }
                            if !wants_ports {
                                continue;
                            }
                            match free_node_port(&in_use.node_ports) {
                                Some(n) => {
                                    in_use.node_ports.insert(n);
                                    mine.ports.push(n);
                                    port.insert("nodePort".into(), json!(n));
                                }
                                None => causes.push(Cause {
                                    reason: "FieldValueInvalid",
                                    message: "Internal error: range is full".into(),
                                    field,
                                }),
                            }
                        }
                    }
                }
            }
        }
        if causes.is_empty() {
            held.insert(key.to_string(), mine);
            Ok(())
        } else {
            Err(causes)
        }
    }
}

/// The cluster IP a new Service gets: `None` for a headless one, the requested IP if free,
/// else the next free one.
fn cluster_ip(
    cidr: ServiceCidr,
    in_use: &BTreeSet<u32>,
    spec: &serde_json::Map<String, Value>,
) -> Result<Option<u32>, Cause> {
    let requested = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
        .map(str::to_string)
        .or_else(|| string_items(spec.get("clusterIPs")).into_iter().next())
        .filter(|ip| !ip.is_empty());
    let Some(requested) = requested else {
        return free_ip(cidr, in_use).map(Some).ok_or_else(|| Cause {
            reason: "FieldValueInvalid",
            message: "Internal error: failed to allocate a serviceIP: range is full".into(),
            field: "spec.clusterIPs".into(),
        });
    };
    if requested == "None" {
        return Ok(None);
    }
    let refuse = |why: &str| Cause {
        reason: "FieldValueInvalid",
        message: format!(
            "Invalid value: {}: failed to allocate IP {requested}: {why}",
            json!([requested])
        ),
        field: "spec.clusterIPs".into(),
    };
    let Ok(ip) = requested.parse::<Ipv4Addr>() else {
        // Not an IP at all: validation names it (`must be a valid IP address`).
        return Ok(None);
    };
    let ip = u32::from(ip);
    if !cidr.usable(ip) {
        return Err(refuse(
            "the provided network does not match the current range",
        ));
    }
    if in_use.contains(&ip) {
        return Err(refuse("provided IP is already allocated"));
    }
    Ok(Some(ip))
}

/// The next free address, from the upper part of the range first: as kube-apiserver does,
/// the lower band is left for Services that ask for a fixed IP.
fn free_ip(cidr: ServiceCidr, in_use: &BTreeSet<u32>) -> Option<u32> {
    let size = cidr.size();
    let low_band = (size / 16).clamp(16, 256).min(size / 2);
    let first = cidr.network + 1;
    let last = cidr.network + size - 2;
    let upper = cidr.network + low_band;
    // The first address is the `kubernetes` Service's, even when that Service is absent.
    (upper..=last)
        .chain(first + 1..upper)
        .find(|ip| !in_use.contains(ip))
}

fn free_node_port(in_use: &BTreeSet<u16>) -> Option<u16> {
    NODE_PORT_RANGE.clone().find(|p| !in_use.contains(p))
}

/// A problem with a Service's cluster IP that is not about allocation: one that is not an
/// IP address (`spec.clusterIPs[i]`, kube-apiserver's message).
pub fn cluster_ip_causes(service: &Value) -> Vec<Cause> {
    let spec = service.get("spec");
    if spec.and_then(|s| s.get("type")).and_then(Value::as_str) == Some("ExternalName") {
        return Vec::new();
    }
    string_items(spec.and_then(|s| s.get("clusterIPs")))
        .iter()
        .enumerate()
        .filter(|(_, ip)| {
            !ip.is_empty() && *ip != "None" && ip.parse::<std::net::IpAddr>().is_err()
        })
        .map(|(index, ip)| {
            Cause::invalid(
                format!("spec.clusterIPs[{index}]"),
                ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            )
        })
        .collect()
}

fn invalid_port(field: &str, port: u64, why: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {port}: {why}"),
        field: field.to_string(),
    }
}

fn ports(spec: Option<&Value>) -> Vec<&Value> {
    spec.and_then(|s| s.get("ports"))
        .and_then(Value::as_array)
        .map(|list| list.iter().collect())
        .unwrap_or_default()
}

fn node_port_of(port: &Value) -> Option<u16> {
    port.get("nodePort")
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n != 0)
}

fn same_port(old: &Value, new: &serde_json::Map<String, Value>) -> bool {
    let protocol = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("TCP").to_string();
    old.get("port") == new.get("port")
        && protocol(old.get("protocol")) == protocol(new.get("protocol"))
}

fn string_items(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr() -> ServiceCidr {
        ServiceCidr::parse("10.0.0.0/24").unwrap()
    }

    fn service(spec: Value) -> Value {
        json!({"metadata": {"name": "s"}, "spec": spec})
    }

    #[test]
    fn cidrs_parse_and_refuse() {
        assert_eq!(cidr().to_string(), "10.0.0.0/24");
        assert_eq!(
            ServiceCidr::parse("10.96.3.4/12").unwrap(),
            ServiceCidr::DEFAULT
        );
        assert!(ServiceCidr::parse("10.0.0.0").is_err());
        assert!(ServiceCidr::parse("10.0.0.0/31").is_err());
        assert!(ServiceCidr::parse("x/24").is_err());
    }

    #[test]
    fn allocates_from_the_upper_band_and_never_twice() {
        let allocator = Allocator::default();
        let mut seen = BTreeSet::new();
        for n in 0..20 {
            let mut s = service(json!({"type": "ClusterIP"}));
            allocator
                .assign(cidr(), InUse::default(), None, &format!("ns/s{n}"), &mut s)
                .unwrap();
            let ip: Ipv4Addr = s["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
            assert!(u32::from(ip) >= u32::from(Ipv4Addr::new(10, 0, 0, 16)));
            assert!(seen.insert(ip), "{ip} given twice");
            assert_eq!(s["spec"]["clusterIPs"], json!([ip.to_string()]));
            assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
        }
    }

    #[test]
    fn a_requested_ip_is_honoured_or_refused() {
        let allocator = Allocator::default();
        let mut in_use = InUse::default();
        in_use.add_service(&service(json!({"clusterIP": "10.0.0.50"})));
        let mut taken = service(json!({"clusterIP": "10.0.0.50"}));
        let causes = allocator
            .assign(cidr(), in_use, None, "ns/t", &mut taken)
            .unwrap_err();
        assert_eq!(causes[0].field, "spec.clusterIPs");
        assert_eq!(
            causes[0].message,
            r#"Invalid value: ["10.0.0.50"]: failed to allocate IP 10.0.0.50: provided IP is already allocated"#
        );
        for outside in ["10.1.0.5", "10.0.0.0", "10.0.0.255"] {
            let mut s = service(json!({"clusterIP": outside}));
            let causes = allocator
                .assign(cidr(), InUse::default(), None, "ns/s", &mut s)
                .unwrap_err();
            assert!(
                causes[0]
                    .message
                    .ends_with("the provided network does not match the current range"),
                "{outside}: {}",
                causes[0].message
            );
        }
        let mut free = service(json!({"clusterIP": "10.0.0.60"}));
        allocator
            .assign(cidr(), InUse::default(), None, "ns/f", &mut free)
            .unwrap();
        assert_eq!(free["spec"]["clusterIP"], "10.0.0.60");
        let mut headless = service(json!({"clusterIP": "None"}));
        allocator
            .assign(cidr(), InUse::default(), None, "ns/h", &mut headless)
            .unwrap();
        assert_eq!(headless["spec"]["clusterIP"], "None");
    }

    #[test]
    fn a_retry_is_not_blocked_by_its_own_hold_but_others_are() {
        let allocator = Allocator::default();
        let mut first = service(json!({"clusterIP": "10.0.0.70"}));
        allocator
            .assign(cidr(), InUse::default(), None, "ns/a", &mut first)
            .unwrap();
        let mut retry = service(json!({"clusterIP": "10.0.0.70"}));
        allocator
            .assign(cidr(), InUse::default(), None, "ns/a", &mut retry)
            .unwrap();
        let mut other = service(json!({"clusterIP": "10.0.0.70"}));
        assert!(
            allocator
                .assign(cidr(), InUse::default(), None, "ns/b", &mut other)
                .is_err()
        );
    }

    #[test]
    fn node_ports_are_allocated_kept_and_refused() {
        let allocator = Allocator::default();
        let mut s = service(
            json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 443, "nodePort": 31000}]}),
        );
        allocator
            .assign(cidr(), InUse::default(), None, "ns/s", &mut s)
            .unwrap();
        let first = s["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
        assert!(NODE_PORT_RANGE.contains(&(first as u16)));
        assert_eq!(s["spec"]["ports"][1]["nodePort"], 31000);
        // An update without node ports keeps them.
        let mut update = service(
            json!({"type": "NodePort", "clusterIP": "10.0.0.20", "ports": [{"port": 80}, {"port": 443}]}),
        );
        let mut in_use = InUse::default();
        in_use.add_service(&s);
        allocator
            .assign(cidr(), in_use, Some(&s), "ns/s", &mut update)
            .unwrap();
        assert_eq!(update["spec"]["ports"][0]["nodePort"], first);
        assert_eq!(update["spec"]["ports"][1]["nodePort"], 31000);
        let mut in_use = InUse::default();
        in_use.add_service(&s);
        let mut clash =
            service(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}));
        let causes = allocator
            .assign(cidr(), in_use, None, "ns/c", &mut clash)
            .unwrap_err();
        assert_eq!(causes[0].field, "spec.ports[0].nodePort");
        assert_eq!(
            causes[0].message,
            "Invalid value: 31000: provided port is already allocated"
        );
    }

    #[test]
    fn an_address_that_is_no_ip_is_named() {
        let causes = cluster_ip_causes(&service(json!({"clusterIPs": ["abc"]})));
        assert_eq!(causes[0].field, "spec.clusterIPs[0]");
        assert_eq!(
            causes[0].message,
            r#"Invalid value: "abc": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#
        );
    }
}
