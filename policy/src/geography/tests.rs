use std::collections::BTreeMap;

use super::*;

fn region(hosts: &[&str], cidrs: &[&str]) -> Region {
    RawRegion {
        hosts: hosts.iter().map(|s| s.to_string()).collect(),
        cidrs: cidrs.iter().map(|s| s.to_string()).collect(),
        s3_endpoints: vec!["https://s3.us-east-1.amazonaws.com".into()],
    }
    .validate("r")
    .unwrap()
}

fn restriction(value: Value, regions: &[(&str, Region)]) -> Restriction {
    let declared: BTreeMap<String, Region> = regions.iter().map(|(n, r)| (n.to_string(), r.clone())).collect();
    Restriction::new(&value, Vec::new(), &declared)
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn a_request_is_inside_when_its_host_and_its_address_are() {
    let us = region(&["*.us.example", "api.example.com"], &["10.0.0.0/8", "2001:db8::/32"]);
    let names_only = region(&["*.eu.example"], &[]);
    let loopback = region(&[], &["127.0.0.0/8"]);
    let r = restriction(Value::Array(vec![Value::String("us".into()), Value::String("eu".into())]), &[("us", us), ("eu", names_only)]);
    // (host, address, inside)
    let table = [
        ("api.example.com", "10.1.2.3", true),
        ("a.us.example", "10.0.0.1", true),
        ("a.b.us.example", "2001:db8::5", true),
        ("a.b.us.example", "::ffff:10.0.0.9", true),
        // A host allowed by name whose address is outside the region's cidrs: denied.
        ("api.example.com", "93.184.216.34", false),
        // Not a subdomain: `*.` needs one more label.
        ("us.example", "10.0.0.1", false),
        ("xus.example", "10.0.0.1", false),
        ("example.com", "10.0.0.1", false),
        // An address inside the cidrs, but the host is named by no pattern.
        ("other.example", "10.0.0.1", false),
        // An address as the host: inside when its cidrs hold it.
        ("10.9.9.9", "10.9.9.9", true),
        ("11.0.0.1", "11.0.0.1", false),
        // A region without cidrs takes its names as they resolve.
        ("x.eu.example", "93.184.216.34", true),
    ];
    for (host, address, inside) in table {
        assert_eq!(r.admits(host, ip(address)).is_ok(), inside, "{host} at {address}: {:?}", r.admits(host, ip(address)));
    }
    let why = r.admits("api.example.com", ip("93.184.216.34")).unwrap_err();
    assert!(why.contains("in region us by name") && why.contains("outside its cidrs"), "{why}");
    let loop_only = restriction(Value::String("lo".into()), &[("lo", loopback)]);
    assert!(loop_only.admits("127.0.0.1", ip("127.0.0.1")).is_ok());
    assert!(loop_only.admits("localhost", ip("127.0.0.1")).is_err(), "a name needs a host pattern");
}

#[test]
fn what_is_not_declared_or_not_a_region_admits_nothing() {
    let open = region(&["*.example"], &[]);
    let undeclared = restriction(Value::String("mars".into()), &[("us", open.clone())]);
    let why = undeclared.admits("a.example", ip("1.2.3.4")).unwrap_err();
    assert!(why.contains("not declared in symbiont.toml: mars"), "{why}");
    let none = restriction(Value::Array(Vec::new()), &[("us", open.clone())]);
    assert!(none.admits("a.example", ip("1.2.3.4")).unwrap_err().contains("share none"));
    let number = restriction(Value::Number(1.0), &[("us", open)]);
    assert!(number.admits("a.example", ip("1.2.3.4")).unwrap_err().contains("not a number"));
    assert!(number.admits_endpoint("https://s3.us-east-1.amazonaws.com").is_err());
}

#[test]
fn backups_go_only_to_the_regions_endpoints() {
    let r = restriction(
        Value::String("us".into()),
        &[
            ("us", region(&[], &[])),
            (
                "eu",
                RawRegion { hosts: vec![], cidrs: vec![], s3_endpoints: vec!["https://s3.eu-west-1.amazonaws.com".into()] }
                    .validate("eu")
                    .unwrap(),
            ),
        ],
    );
    for same in ["https://s3.us-east-1.amazonaws.com", "HTTPS://S3.US-EAST-1.amazonaws.com:443/", "https://s3.us-east-1.amazonaws.com."] {
        assert!(r.admits_endpoint(same).is_ok(), "{same}");
    }
    for other in ["https://s3.eu-west-1.amazonaws.com", "http://s3.us-east-1.amazonaws.com", "https://s3.us-east-1.amazonaws.com:8443"] {
        let why = r.admits_endpoint(other).unwrap_err();
        assert!(why.contains("not an S3 endpoint of the regions us"), "{other}: {why}");
    }
}

#[test]
fn networks_and_patterns_are_checked_as_written() {
    assert_eq!(Cidr::parse("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
    assert_eq!(Cidr::parse("127.0.0.1").unwrap().prefix, 32);
    assert_eq!(Cidr::parse("::/0").unwrap().prefix, 0);
    assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
    assert!(!Cidr::parse("10.0.0.0/8").unwrap().contains(ip("2001:db8::1")));
    for (bad, why) in [
        ("10.0.0.1/8", "bits set after its prefix; the network is 10.0.0.0/8"),
        ("10.0.0.0/33", "0 to 32"),
        ("10.0.0/8", "not a network"),
        ("example.com/8", "not a network"),
    ] {
        assert!(Cidr::parse(bad).unwrap_err().contains(why), "{bad}: {:?}", Cidr::parse(bad));
    }
    for bad in ["*.Example.com", "example.com.", "a.*.example", "*", "*.", "example.com:443", "[::1]"] {
        assert!(host_pattern_error(bad).is_some(), "{bad}");
    }
    for good in ["*.example.com", "api.example.com", "127.0.0.1", "::1", "localhost"] {
        assert!(host_pattern_error(good).is_none(), "{good}");
    }
    for bad in ["s3.amazonaws.com", "ftp://s3.example", "https://s3.example/bucket", "https://", "https://h:99999"] {
        assert!(endpoint_key(bad).is_err(), "{bad}");
    }
}
