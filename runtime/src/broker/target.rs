//! Where an HTTP request goes, in the one spelling that guards see, the audit log keeps and the
//! broker connects to. A host has many spellings (`127.0.0.1` is also `2130706433`, `0x7f000001`,
//! `127.1`, `0177.0.0.1`, `[::ffff:127.0.0.1]`; `localhost` is also `LOCALHOST.`), and a guard
//! comparing the raw string would be passed by every one it does not list. So the URL is parsed as
//! a WHATWG URL parser does (the `url` crate, already in the build through bollard), its host is
//! rewritten into canonical form, and the request is made to that canonical URL.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::decision::{DecidingRule, Unmet};

/// An HTTP request's destination, canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL requested: canonical host, no fragment (never sent anyway). Credentials
    /// (`user:password@`) stay in it, never in the host; the audit log redacts them.
    pub url: String,
    /// `http` or `https`.
    pub scheme: String,
    /// A domain name in lowercase ASCII (IDNA applied, percent-encoding decoded) without a trailing
    /// dot; an IPv4 address as a dotted quad, also when written as an IPv4-mapped IPv6 address;
    /// an IPv6 address in compressed lowercase form, without brackets.
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
    /// The path and query, as sent.
    pub path: String,
}

/// Parses `raw` into its canonical [`Target`], or says why it is no HTTP destination.
pub fn canonical(raw: &str) -> Result<Target, String> {
    let mut url = Url::parse(raw).map_err(|e| format!("the URL does not parse: {e}"))?;
    let scheme = url.scheme().to_string();
    if scheme != "http" && scheme != "https" {
        return Err(format!("only http and https URLs can be requested, not {scheme}"));
    }
    let host = canonical_host(url.host())?;
    url.set_host(Some(&host.to_string())).map_err(|e| format!("the host does not parse again: {e}"))?;
    // The canonical form must be a fixed point, or guards and connection could still differ.
    if canonical_host(url.host())? != host {
        return Err("the host has no single canonical form".into());
    }
    url.set_fragment(None);
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let mut path = url.path().to_string();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let host = match host {
        Host::Domain(name) => name,
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    };
    Ok(Target { url: url.into(), scheme, host, port, path })
}

/// The host as it will be written back: a trailing dot dropped, an IPv4-mapped IPv6 address as
/// its IPv4 address.
fn canonical_host(host: Option<Host<&str>>) -> Result<Host<String>, String> {
    match host.ok_or("the URL has no host")? {
        Host::Domain(name) => {
            let name = name.strip_suffix('.').unwrap_or(name);
            if name.is_empty() || name.ends_with('.') {
                return Err(format!("`{name}.` is not a host name"));
            }
            Ok(Host::Domain(name.to_string()))
        }
        Host::Ipv4(ip) => Ok(Host::Ipv4(ip)),
        Host::Ipv6(ip) => Ok(ip.to_ipv4_mapped().map_or(Host::Ipv6(ip), Host::Ipv4)),
    }
}

/// Whether an allowed request to `to`, connecting to `address`, stays inside the regions the
/// agent's merged `geographic_restriction` names (`docs/policy-semantics.md`, "Conditions the
/// runtime enforces"). If not: the condition unmet, denied by the `conditions` rules that state
/// the restriction, and why. No address (never resolved) is outside: fail closed.
pub fn within_regions(effective: &symbiont_policy::EffectivePolicy, to: &Target, address: Option<IpAddr>) -> Result<(), Unmet> {
    let Some(restriction) = effective.geography() else { return Ok(()) };
    let admitted = match address {
        Some(address) => restriction.admits(&to.host, plain(address)),
        None => Err(format!("{} was not resolved before the decision", to.host)),
    };
    admitted.map_err(|why| {
        let rules = restriction.rules.iter().map(|(text, at)| DecidingRule { text: text.clone(), location: at.to_string() }).collect();
        Unmet { reason: "OutsideRegion", rules, why }
    })
}

/// An address as connected to: an IPv4-mapped IPv6 address (from DNS) is its IPv4 address.
pub fn plain(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Refuses what is no destination: Linux connects `0.0.0.0` (and `::`) to the host itself, so a
/// guard that denies loopback by address would be passed by it.
pub fn destination(ip: IpAddr) -> Result<(), String> {
    let unspecified = match plain(ip) {
        IpAddr::V4(v4) => v4.octets()[0] == 0,
        IpAddr::V6(v6) => v6.is_unspecified(),
    };
    if unspecified {
        return Err(format!("{ip} is not a destination (0.0.0.0/8 and :: mean this host, which Linux connects to itself)"));
    }
    Ok(())
}

/// What kind of address a request connects to, for guards that cannot list every address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// This host: 127.0.0.0/8 or ::1.
    pub loopback: bool,
    /// Not on the public internet: loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7),
    /// link-local (169.254/16, where clouds serve instance metadata, and fe80::/10), shared
    /// (100.64/10), and the reserved, documentation, benchmarking, broadcast and multicast ranges.
    pub private: bool,
}

pub fn scope(ip: IpAddr) -> Scope {
    match plain(ip) {
        IpAddr::V4(v4) => scope_v4(v4),
        IpAddr::V6(v6) => scope_v6(v6),
    }
}

fn scope_v4(ip: Ipv4Addr) -> Scope {
    let [a, b, c, _] = ip.octets();
    let private = ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 224;
    Scope { loopback: ip.is_loopback(), private }
}

fn scope_v6(ip: Ipv6Addr) -> Scope {
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return scope_v4(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])));
    }
    let private = ip.is_loopback()
        || ip.is_unspecified()
        || s[..6] == [0; 6] // IPv4-compatible, deprecated
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local, deprecated
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64
        || s[..4] == [0x100, 0, 0, 0]; // discard-only
    Scope { loopback: ip.is_loopback(), private }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(raw: &str) -> Result<String, String> {
        canonical(raw).map(|t| t.host)
    }

    #[test]
    fn every_spelling_of_a_host_has_one_canonical_form() {
        let table = [
            ("http://127.0.0.1/", "127.0.0.1"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://0X7F.1/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://127.0.1/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://017700000001/", "127.0.0.1"),
            ("http://127.0.0.1./", "127.0.0.1"),
            ("http://%31%32%37.0.0.1/", "127.0.0.1"),
            ("http://[::ffff:127.0.0.1]/", "127.0.0.1"),
            ("http://[::FFFF:7F00:1]/", "127.0.0.1"),
            ("http://[0:0:0:0:0:ffff:127.0.0.1]:8080/", "127.0.0.1"),
            ("http://0.0.0.0/", "0.0.0.0"),
            ("http://0/", "0.0.0.0"),
            ("http://[::1]/", "::1"),
            ("http://[0:0:0:0:0:0:0:1]/", "::1"),
            ("http://[2001:DB8:0:0:0:0:0:1]/", "2001:db8::1"),
            ("http://[::]/", "::"),
            ("http://localhost/", "localhost"),
            ("http://LOCALHOST./", "localhost"),
            ("http://LocalHost:80/", "localhost"),
            ("http://%6c%6f%63alhost/", "localhost"),
            ("http://ｌｏｃａｌｈｏｓｔ/", "localhost"),
            ("https://API.Example.COM./v1", "api.example.com"),
            ("https://bücher.example/", "xn--bcher-kva.example"),
            ("http://evil.example@127.0.0.1/", "127.0.0.1"),
            ("http://127.0.0.1:80@evil.example/", "evil.example"),
            ("http://a:b@LOCALHOST./", "localhost"),
        ];
        for (raw, expected) in table {
            assert_eq!(host(raw).as_deref(), Ok(expected), "{raw}");
            // The policy's static check of host literals (SYM0210) agrees with this form.
            assert!(symbiont_policy::names::host_is_canonical(expected), "{expected} is what guards see");
        }
    }

    #[test]
    fn what_is_no_http_destination_is_refused() {
        for raw in [
            "nonsense",
            "127.0.0.1/x",
            "ftp://example.com/",
            "file:///etc/passwd",
            "http://",
            "http://example.com../",
            "http://256.0.0.1/",
            "http://1.2.3.4.5/",
            "http://0x100000000/",
            "http://[::1/",
            "http://[::ffff:127.0.0.1.1]/",
            "http://exa mple.com/",
            "http://%00/",
            "http://example.com:99999/",
            "http://foo.0x7f/",
        ] {
            assert!(canonical(raw).is_err(), "{raw} must be refused, got {:?}", canonical(raw));
        }
    }

    #[test]
    fn the_canonical_url_is_what_guards_see_and_what_is_sent() {
        let t = canonical("HTTP://0x7f000001:8080/a/../b/%7e?q=1#frag").unwrap();
        assert_eq!(
            t,
            Target {
                url: "http://127.0.0.1:8080/b/%7e?q=1".into(),
                scheme: "http".into(),
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/b/%7e?q=1".into()
            }
        );
        let t = canonical("https://[::FFFF:10.0.0.1]").unwrap();
        assert_eq!((t.url.as_str(), t.port, t.path.as_str()), ("https://10.0.0.1/", 443, "/"));
        let t = canonical("https://[2001:db8::1]:443/x").unwrap();
        assert_eq!((t.url.as_str(), t.host.as_str()), ("https://[2001:db8::1]/x", "2001:db8::1"));
        let t = canonical("http://Example.COM.:80").unwrap();
        assert_eq!(t.url, "http://example.com/");
        let t = canonical("http://u:p@2130706433/").unwrap();
        assert_eq!((t.url.as_str(), t.host.as_str()), ("http://u:p@127.0.0.1/", "127.0.0.1"));
        // Canonical is a fixed point.
        for raw in ["http://2130706433/x", "https://LOCALHOST./", "http://[::ffff:1.2.3.4]:81/?a"] {
            let once = canonical(raw).unwrap();
            assert_eq!(canonical(&once.url).unwrap(), once, "{raw}");
        }
    }

    #[test]
    fn a_restricted_agent_reaches_only_its_regions() {
        let config = symbiont_policy::config::parse(
            "[regions.lo]\ncidrs = [\"127.0.0.0/8\"]\n[regions.far]\nhosts = [\"*.far.example\"]\ncidrs = [\"10.0.0.0/8\"]\n",
        )
        .unwrap();
        let source =
            "agent a {\n    policy p {\n        allow: http_request\n        conditions: { geographic_restriction: REGION }\n    }\n}\n";
        let within = |region: &str, url: &str, address: Option<&str>| {
            let source = source.replace("REGION", region);
            let universe = symbiont_policy::load([("a.sym", source.as_str())], config.clone());
            let effective = universe.effective(Some("a")).unwrap();
            within_regions(&effective, &canonical(url).unwrap(), address.map(|a| a.parse().unwrap()))
                .map_err(|unmet| (serde_json::Value::Array(unmet.rules.iter().map(DecidingRule::to_json).collect()), unmet.why))
        };
        assert_eq!(within("\"lo\"", "http://127.0.0.1:8080/", Some("127.0.0.1")), Ok(()));
        assert_eq!(within("[\"far\", \"lo\"]", "http://2130706433/", Some("127.0.0.1")), Ok(()));
        let (rules, why) = within("\"far\"", "http://127.0.0.1:8080/", Some("127.0.0.1")).unwrap_err();
        assert_eq!(rules, serde_json::json!([{ "rule": "conditions: { geographic_restriction: \"far\" }", "at": "a.sym:4:9" }]));
        assert!(why.contains("127.0.0.1 (127.0.0.1) is in none of the regions this agent may reach"), "{why}");
        // By name inside, by the address connected to outside: denied.
        let (_, why) = within("\"far\"", "http://api.far.example/", Some("::ffff:93.184.216.34")).unwrap_err();
        assert!(why.contains("outside its cidrs"), "{why}");
        assert!(within("\"far\"", "http://api.far.example/", Some("10.1.1.1")).is_ok());
        assert!(within("\"lo\"", "http://127.0.0.1/", None).is_err(), "no address is outside");
        assert!(within("\"mars\"", "http://127.0.0.1/", Some("127.0.0.1")).unwrap_err().1.contains("not declared in symbiont.toml: mars"));
    }

    #[test]
    fn unspecified_addresses_are_no_destination() {
        for ip in ["0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0"] {
            assert!(destination(ip.parse().unwrap()).is_err(), "{ip}");
        }
        for ip in ["127.0.0.1", "::1", "10.0.0.1", "93.184.216.34"] {
            assert!(destination(ip.parse().unwrap()).is_ok(), "{ip}");
        }
    }

    #[test]
    fn scopes_name_loopback_and_private_addresses() {
        let of = |ip: &str| {
            let s = scope(ip.parse().unwrap());
            (s.loopback, s.private)
        };
        for ip in ["127.0.0.1", "127.255.0.9", "::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1"] {
            assert_eq!(of(ip), (true, true), "{ip}");
        }
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "192.0.2.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::7f00:1",
        ] {
            assert_eq!(of(ip), (false, true), "{ip}");
        }
        for ip in ["93.184.216.34", "172.32.0.1", "100.128.0.1", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"] {
            assert_eq!(of(ip), (false, false), "{ip}");
        }
        assert_eq!(plain("::ffff:1.2.3.4".parse().unwrap()), "1.2.3.4".parse::<IpAddr>().unwrap());
    }
}
