//! The test PostgreSQL server (the one `scripts/install-postgres.sh` starts; `make test`
//! passes its connection string in `STAMP_TEST_PG`), and databases of a test's own on it.

use std::process::Command;

/// The test server's connection string. Missing is a failure, never a skip.
pub fn server() -> String {
    match std::env::var("STAMP_TEST_PG") {
        Ok(conn) if !conn.trim().is_empty() => conn.trim().to_string(),
        _ => panic!(
            "STAMP_TEST_PG is not set: this test needs a PostgreSQL server. Run `make test`, or \
             `STAMP_TEST_PG=$(scripts/install-postgres.sh) cargo test --test <name>` \
             (scripts/install-postgres.sh installs and starts one on 127.0.0.1:55432)"
        ),
    }
}

/// `psql CONN -Atc SQL`, failing the test if psql does.
pub fn psql(conn: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([conn, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql runs (it comes with the postgresql package scripts/install-postgres.sh installs)");
    assert!(out.status.success(), "psql failed on `{sql}`:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `conn` (a `postgres://` URL) with another database.
pub fn with_database(conn: &str, database: &str) -> String {
    let (scheme, rest) =
        conn.split_once("://").unwrap_or_else(|| panic!("STAMP_TEST_PG is not a postgres:// URL: {conn}"));
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let query = rest.find('?').map_or("", |i| &rest[i..]);
    format!("{scheme}://{authority}/{database}{query}")
}

/// A database of the test's own, dropped when the test ends (passed or not): the server
/// outlives the test, and advisory locks (Terraform's pg backend takes lock -1 to create a
/// workspace) are per database, so tests sharing one would contend with each other.
pub struct Database {
    server: String,
    pub name: String,
}

impl Database {
    /// Creates `stamp_test_<pid>_<n>` on the test server.
    pub fn create() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let server = server();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name =
            format!("stamp_test_{}_{}_{}", std::process::id(), nanos % 1_000_000, NEXT.fetch_add(1, Ordering::Relaxed));
        psql(&server, &format!("CREATE DATABASE \"{name}\""));
        Self { server, name }
    }

    /// Its connection string.
    pub fn conn(&self) -> String {
        with_database(&self.server, &self.name)
    }

    /// `psql -Atc SQL` in it.
    pub fn psql(&self, sql: &str) -> String {
        psql(&self.conn(), sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([&self.server, "-X", "-q", "-c", &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)])
            .output();
    }
}
