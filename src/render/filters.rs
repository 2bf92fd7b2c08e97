//! Template filters Terraform users need at render time.

use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use minijinja::value::{Rest, Value};
use minijinja::{Error, ErrorKind};

use super::hcl_value::{HclLiteral, literal};

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, message)
}

fn network(prefix: &str) -> Result<Ipv4Net, Error> {
    Ipv4Net::from_str(prefix).map_err(|_| invalid(format!("`{prefix}` is not an IPv4 CIDR block")))
}

/// `{{ value | hcl }}`: any value as an HCL literal, to be printed in expression position.
pub fn hcl(value: &Value) -> Result<Value, Error> {
    Ok(Value::from_object(HclLiteral(literal(value)?)))
}

/// Terraform's `cidrsubnet(prefix, newbits, netnum)`.
pub fn cidrsubnet(prefix: &str, newbits: u8, netnum: u64) -> Result<String, Error> {
    let net = network(prefix)?;
    subnet(net, newbits, netnum).map(|n| n.to_string())
}

fn subnet(net: Ipv4Net, newbits: u8, netnum: u64) -> Result<Ipv4Net, Error> {
    let len = u32::from(net.prefix_len()) + u32::from(newbits);
    if len > 32 {
        return Err(invalid(format!("cannot add {newbits} bits to `{net}`: the prefix would exceed 32 bits")));
    }
    if newbits < 64 && netnum >= 1u64 << newbits {
        return Err(invalid(format!("`{net}` has no subnet number {netnum} with {newbits} new bits")));
    }
    let base = u32::from(net.trunc().network());
    let len = u8::try_from(len).expect("at most 32");
    let step = if len == 32 { 1u64 } else { 1u64 << (32 - len) };
    let address = u64::from(base) + netnum * step;
    let address = u32::try_from(address).map_err(|_| invalid(format!("subnet {netnum} of `{net}` is out of range")))?;
    Ok(Ipv4Net::new(Ipv4Addr::from(address), len).expect("length checked"))
}

/// Terraform's `cidrhost(prefix, hostnum)`.
pub fn cidrhost(prefix: &str, hostnum: u64) -> Result<String, Error> {
    let net = network(prefix)?;
    let size = 1u64 << (32 - net.prefix_len());
    if hostnum >= size {
        return Err(invalid(format!("`{net}` has no host number {hostnum}")));
    }
    let address = u64::from(u32::from(net.trunc().network())) + hostnum;
    Ok(Ipv4Addr::from(u32::try_from(address).expect("inside the network")).to_string())
}

/// Terraform's `cidrsubnets(prefix, newbits...)`: consecutive subnets of the given sizes.
#[allow(clippy::needless_pass_by_value)] // minijinja passes variadic arguments by value
pub fn cidrsubnets(prefix: &str, newbits: Rest<u8>) -> Result<Vec<String>, Error> {
    let net = network(prefix)?.trunc();
    let end = u64::from(u32::from(net.broadcast()));
    let mut next = u64::from(u32::from(net.network()));
    let mut out = Vec::with_capacity(newbits.len());
    for bits in newbits.iter().copied() {
        let len = u32::from(net.prefix_len()) + u32::from(bits);
        if len > 32 {
            return Err(invalid(format!("cannot add {bits} bits to `{net}`")));
        }
        let len = u8::try_from(len).expect("at most 32");
        let size = 1u64 << (32 - len);
        let start = next.div_ceil(size) * size;
        if start + size - 1 > end {
            return Err(invalid(format!("not enough room in `{net}` for all subnets")));
        }
        let address = u32::try_from(start).expect("inside the network");
        out.push(Ipv4Net::new(Ipv4Addr::from(address), len).expect("length checked").to_string());
        next = start + size;
    }
    Ok(out)
}

/// The first `n` availability zone names of a region (`eu-west-1a`, `eu-west-1b`, ...).
pub fn azs(region: &str, n: u8) -> Result<Vec<String>, Error> {
    if n == 0 || n > 6 {
        return Err(invalid(format!("`azs` takes 1 to 6 zones, not {n}")));
    }
    Ok((b'a'..b'a' + n).map(|letter| format!("{region}{}", letter as char)).collect())
}

/// A lowercase name of letters, digits and single hyphens.
pub fn slug(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Adds Stamp's filters to a template environment.
pub fn register(env: &mut minijinja::Environment<'_>) {
    env.add_filter("hcl", hcl);
    env.add_filter("cidrsubnet", cidrsubnet);
    env.add_filter("cidrhost", cidrhost);
    env.add_filter("cidrsubnets", cidrsubnets);
    env.add_filter("azs", azs);
    env.add_filter("slug", slug);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math_matches_terraform() {
        assert_eq!(cidrsubnet("10.0.0.0/16", 8, 2).unwrap(), "10.0.2.0/24");
        assert_eq!(cidrsubnet("10.1.0.0/16", 4, 15).unwrap(), "10.1.240.0/20");
        assert_eq!(cidrsubnet("172.16.0.0/12", 4, 2).unwrap(), "172.18.0.0/16");
        assert!(cidrsubnet("10.0.0.0/16", 8, 256).is_err());
        assert!(cidrsubnet("10.0.0.0/30", 8, 0).is_err());
        assert!(cidrsubnet("10.0.0.0/16", 250, 0).is_err(), "no overflow on large arguments");
        assert!(cidrsubnets("10.0.0.0/16", Rest(vec![250])).is_err());
        assert_eq!(cidrhost("10.12.112.0/20", 16).unwrap(), "10.12.112.16");
        assert!(cidrhost("10.0.0.0/30", 4).is_err());
        assert_eq!(
            cidrsubnets("10.1.0.0/16", Rest(vec![4, 4, 8, 4])).unwrap(),
            vec!["10.1.0.0/20", "10.1.16.0/20", "10.1.32.0/24", "10.1.48.0/20"]
        );
    }

    #[test]
    fn az_names_and_slugs() {
        assert_eq!(azs("eu-west-1", 2).unwrap(), vec!["eu-west-1a", "eu-west-1b"]);
        assert!(azs("eu-west-1", 0).is_err());
        assert_eq!(slug("Orders DB (main)"), "orders-db-main");
    }
}
