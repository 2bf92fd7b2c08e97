//! Custom JSON Schema formats for values JSON Schema has no format for.

use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;

/// A custom format: its name, its checker and how a valid value looks.
pub type Format = (&'static str, fn(&str) -> bool, &'static str);

/// Every custom format.
pub const FORMATS: &[Format] = &[
    ("cidr", is_cidr, "an IPv4 network like `10.0.0.0/16`, with the host bits zero"),
    ("aws-account-id", is_aws_account_id, "twelve digits, quoted, like `\"123456789012\"`"),
    ("aws-region", is_aws_region, "an AWS region like `eu-west-1` or `us-gov-west-1`"),
    ("dns-zone", is_dns_zone, "a lowercase DNS name like `internal.example.com`, without a trailing dot"),
];

/// What a valid value of `format` looks like, for error hints.
pub fn describe(format: &str) -> Option<&'static str> {
    FORMATS.iter().find(|(name, ..)| *name == format).map(|(.., text)| *text)
}

/// An IPv4 network in CIDR notation whose address is the network address.
pub fn is_cidr(value: &str) -> bool {
    Ipv4Net::from_str(value).is_ok_and(|net| net.trunc() == net)
        && value.split('/').next().is_some_and(|addr| Ipv4Addr::from_str(addr).is_ok())
}

pub fn is_aws_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

/// `<area>-<direction>-<number>` with an optional partition part: `eu-west-1`,
/// `us-gov-west-1`, `ap-southeast-2`.
pub fn is_aws_region(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let (area, rest) = match parts.as_slice() {
        [area, middle @ .., number] if !middle.is_empty() && middle.len() <= 2 => (*area, (middle, *number)),
        _ => return false,
    };
    let (middle, number) = rest;
    area.len() == 2
        && area.bytes().all(|b| b.is_ascii_lowercase())
        && middle.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// At least two labels of lowercase letters, digits and inner hyphens.
pub fn is_dns_zone(value: &str) -> bool {
    let labels: Vec<&str> = value.split('.').collect();
    value.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        assert!(is_cidr("10.0.0.0/16"));
        assert!(is_cidr("192.168.4.0/22"));
        assert!(!is_cidr("10.0.0.1/16"), "host bits set");
        assert!(!is_cidr("10.0.0/16"));
        assert!(!is_cidr("10.0.0.0"));
        assert!(!is_cidr("10.0.0.0/33"));
        assert!(!is_cidr("fd00::/8"));
    }

    #[test]
    fn account_id() {
        assert!(is_aws_account_id("012345678901"));
        assert!(!is_aws_account_id("12345678901"));
        assert!(!is_aws_account_id("12345678901a"));
    }

    #[test]
    fn region() {
        for ok in ["eu-west-1", "us-east-2", "ap-southeast-2", "us-gov-west-1"] {
            assert!(is_aws_region(ok), "{ok}");
        }
        for bad in ["eu-west", "euwest1", "EU-west-1", "eu--1", "e-west-1", "eu-west-x"] {
            assert!(!is_aws_region(bad), "{bad}");
        }
    }

    #[test]
    fn dns_zone() {
        assert!(is_dns_zone("prod.internal.acme.com"));
        assert!(is_dns_zone("a-b.example.io"));
        assert!(!is_dns_zone("example"));
        assert!(!is_dns_zone("example.com."));
        assert!(!is_dns_zone("-a.example.com"));
        assert!(!is_dns_zone("Example.com"));
        assert!(!is_dns_zone("a..com"));
    }
}
