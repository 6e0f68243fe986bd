//! Geography: the regions `symbiont.toml` declares (`[regions.NAME]`) and the restriction an
//! agent's merged `geographic_restriction` condition puts on where its requests go and where its
//! audit entries are backed up (`docs/policy-semantics.md`, "Conditions the runtime enforces").
//!
//! ```toml
//! [regions.us]
//! hosts = ["*.us.example.com", "api.example.com"]   # canonical host names; `*.` = any subdomain
//! cidrs = ["10.0.0.0/8", "2001:db8::/32"]           # addresses a request may connect to
//! s3_endpoints = ["https://s3.us-east-1.amazonaws.com"]
//! ```
//!
//! A request is inside a region when its canonical host is (a name one of `hosts` matches, or an
//! address inside one of `cidrs`) and the address it connects to is too (inside one of `cidrs`;
//! a region that declares no `cidrs` takes its host names as they resolve). A restricted agent's
//! request must be inside one region its restriction names; anything else fails closed.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use serde::Deserialize;

use crate::{model::SourceLoc, Value};

/// The condition key the runtime enforces as a geographic restriction.
pub const KEY: &str = "geographic_restriction";

/// A region as `symbiont.toml` declares it, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Region {
    /// Canonical host names, or `*.` and a canonical name for any of its subdomains.
    pub hosts: Vec<String>,
    pub cidrs: Vec<Cidr>,
    /// The S3 endpoints audit backups may go to, as [`endpoint_key`] writes them.
    pub s3_endpoints: Vec<String>,
}

/// `[regions.NAME]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table with `hosts`, `cidrs` and `s3_endpoints`")]
pub(crate) struct RawRegion {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    cidrs: Vec<String>,
    #[serde(default)]
    s3_endpoints: Vec<String>,
}

impl RawRegion {
    /// The region, or why it is refused (a pattern that could never match a canonical host, a
    /// network that is not one, an endpoint that is no http(s) URL).
    pub(crate) fn validate(self, name: &str) -> Result<Region, String> {
        let at = |what: &str, why: String| format!("[regions.{name}] {what}: {why}");
        for host in &self.hosts {
            host_pattern_error(host).map_or(Ok(()), |why| Err(at("hosts", why)))?;
        }
        let cidrs = self.cidrs.iter().map(|c| Cidr::parse(c).map_err(|why| at("cidrs", why))).collect::<Result<_, _>>()?;
        let s3_endpoints =
            self.s3_endpoints.iter().map(|e| endpoint_key(e).map_err(|why| at("s3_endpoints", why))).collect::<Result<_, _>>()?;
        Ok(Region { hosts: self.hosts, cidrs, s3_endpoints })
    }
}

/// Why `pattern` is no host pattern: it must be a canonical host (as the broker writes hosts:
/// lowercase, no trailing dot) or `*.` followed by one, so that it can match.
fn host_pattern_error(pattern: &str) -> Option<String> {
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    let port = name.contains(':') && name.parse::<Ipv6Addr>().is_err();
    if name.contains('*') || port || !crate::names::host_is_canonical(name) {
        return Some(format!(
            "`{pattern}` is not a host pattern: write a canonical host (lowercase, no trailing dot, no port) or `*.` and one"
        ));
    }
    None
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub address: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or a single address. Host bits must be zero, so that what is
    /// written is the network meant.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
        let address: IpAddr = address.parse().map_err(|_| format!("`{text}` is not a network (`10.0.0.0/8`, `2001:db8::/32`)"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix.parse::<u8>().ok().filter(|p| *p <= max).ok_or(format!("`{text}`: the prefix length must be 0 to {max}"))?
        };
        let cidr = Cidr { address, prefix };
        if cidr.network() != address {
            return Err(format!("`{text}` has bits set after its prefix; the network is {}/{prefix}", cidr.network()));
        }
        Ok(cidr)
    }

    fn network(&self) -> IpAddr {
        match self.address {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask32(self.prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask128(self.prefix))),
        }
    }

    /// Whether `ip` is inside; an IPv4-mapped IPv6 address is its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => u32::from(ip) & mask32(self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => u128::from(ip) & mask128(self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// An S3 endpoint in the one spelling two spellings of it compare equal in:
/// `scheme://host:port`, lowercase, the port explicit, no path.
pub fn endpoint_key(url: &str) -> Result<String, String> {
    let bad = |why: &str| format!("`{url}` is not an S3 endpoint: {why}");
    let lower = url.to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://").ok_or_else(|| bad("expected http:// or https://"))?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return Err(bad("expected http:// or https://")),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return Err(bad("an endpoint is a scheme, a host and an optional port, nothing else"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse::<u16>().map_err(|_| bad("the port is not a number"))?),
        _ => (authority, default_port),
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(format!("{scheme}://{host}:{port}"))
}

/// An agent's merged `geographic_restriction`, resolved against the declared regions.
#[derive(Debug, Clone, PartialEq)]
pub struct Restriction {
    /// The regions the merged value names (none when the merged restrictions share no region).
    pub named: Vec<String>,
    /// Those of them `symbiont.toml` declares, with their definitions.
    pub regions: Vec<(String, Region)>,
    /// The value is not a region name nor a list of them: nothing is inside it.
    pub invalid: Option<String>,
    /// The `conditions` rules that state it: the deciding rules of what it denies.
    pub rules: Vec<(String, SourceLoc)>,
}

/// Why a value cannot be a geographic restriction, or the region names it holds.
pub fn region_names(value: &Value) -> Result<Vec<String>, String> {
    let wrong = || format!("`{KEY}` names regions (a string or a list of strings), not {}", value.kind());
    match value {
        Value::String(name) => Ok(vec![name.clone()]),
        Value::Array(items) => items.iter().map(|i| i.as_str().map(str::to_string).ok_or_else(wrong)).collect(),
        _ => Err(wrong()),
    }
}

impl Restriction {
    /// The restriction of a merged `value` stated by `rules`, over `declared` regions.
    pub fn new(value: &Value, rules: Vec<(String, SourceLoc)>, declared: &BTreeMap<String, Region>) -> Restriction {
        let (named, invalid) = match region_names(value) {
            Ok(named) => (named, None),
            Err(why) => (Vec::new(), Some(why)),
        };
        let regions = named.iter().filter_map(|n| declared.get(n).map(|r| (n.clone(), r.clone()))).collect();
        Restriction { named, regions, invalid, rules }
    }

    /// Whether a request to canonical `host`, connecting to `address`, stays inside a named
    /// region; if not, why, in words for the audit entry and the agent.
    pub fn admits(&self, host: &str, address: IpAddr) -> Result<(), String> {
        if let Some(why) = &self.invalid {
            return Err(format!("{why}, so no request is inside it"));
        }
        let names =
            if self.named.is_empty() { "no region (the restrictions that apply share none)".to_string() } else { self.named.join(", ") };
        let mut by_name = Vec::new();
        for (name, region) in &self.regions {
            if !region.has_host(host) {
                continue;
            }
            if region.has_address(address) {
                return Ok(());
            }
            by_name.push(name.as_str());
        }
        if !by_name.is_empty() {
            return Err(format!(
                "{host} is in region {} by name, but the address connected to, {address}, is outside its cidrs ({KEY}: {names})",
                by_name.join(", ")
            ));
        }
        let undeclared: Vec<&str> = self.named.iter().filter(|n| !self.regions.iter().any(|(d, _)| d == *n)).map(String::as_str).collect();
        let note =
            if undeclared.is_empty() { String::new() } else { format!("; not declared in symbiont.toml: {}", undeclared.join(", ")) };
        Err(format!("{host} ({address}) is in none of the regions this agent may reach ({KEY}: {names}{note})"))
    }

    /// Whether audit entries may be backed up to `endpoint` (any spelling [`endpoint_key`] takes).
    pub fn admits_endpoint(&self, endpoint: &str) -> Result<(), String> {
        let key = endpoint_key(endpoint)?;
        if self.invalid.is_none() && self.regions.iter().any(|(_, r)| r.s3_endpoints.contains(&key)) {
            return Ok(());
        }
        let listed: Vec<&str> = self.regions.iter().flat_map(|(_, r)| r.s3_endpoints.iter().map(String::as_str)).collect();
        let listed = if listed.is_empty() { "none".to_string() } else { listed.join(", ") };
        Err(format!("{endpoint} is not an S3 endpoint of the regions {} ({KEY}; their s3_endpoints: {listed})", self.named.join(", ")))
    }
}

impl Region {
    /// Its `hosts` match the canonical `host`, or `host` is an address inside its `cidrs`.
    pub fn has_host(&self, host: &str) -> bool {
        let by_name = self.hosts.iter().any(|pattern| match pattern.strip_prefix("*.") {
            Some(parent) => host.strip_suffix(parent).is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => pattern == host,
        });
        by_name || host.parse::<IpAddr>().is_ok_and(|ip| self.cidrs.iter().any(|c| c.contains(ip)))
    }

    /// `address` is inside its `cidrs`, or it declares none (its host names are taken as they
    /// resolve).
    pub fn has_address(&self, address: IpAddr) -> bool {
        self.cidrs.is_empty() || self.cidrs.iter().any(|c| c.contains(address))
    }
}

#[cfg(test)]
mod tests;
