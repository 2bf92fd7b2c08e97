//! The user's Terraform CLI configuration, as far as Stamp understands it, and the one Stamp
//! writes for `init` from it: the same settings with Stamp's mirror as the first way to install
//! the providers it holds. Anything Stamp does not understand turns the cache off for the run
//! (with a warning) rather than being dropped or rewritten wrongly.

use std::path::{Path, PathBuf};

use hcl::{Block, Body, Expression, Structure};

/// What Stamp keeps of the user's CLI configuration.
#[derive(Debug, Default)]
pub struct UserConfig {
    /// Settings copied as they are (`host`, `credentials_helper`, `disable_checkpoint`...).
    kept: Vec<Structure>,
    /// The blocks of `provider_installation` (none: Terraform's default, `direct`).
    methods: Vec<Block>,
    /// Registry tokens, for `TF_TOKEN_*` variables: never written to disk.
    pub tokens: Vec<(String, String)>,
}

/// Top-level attributes copied as they are.
const KEPT_ATTRIBUTES: &[&str] = &["disable_checkpoint", "disable_checkpoint_signature"];
/// The plugin cache is not safe for parallel `init`: Stamp's mirror replaces it.
const DROPPED_ATTRIBUTES: &[&str] = &["plugin_cache_dir", "plugin_cache_may_break_dependency_lock_file"];
const METHODS: &[&str] = &["filesystem_mirror", "network_mirror", "direct", "dev_overrides"];

/// The folders Terraform searches for providers when the configuration names no
/// `provider_installation` (its implied local mirrors), relative to the home folder or absolute.
fn implied_mirrors() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("terraform.d/plugins")];
    if let Some(home) = std::env::var_os("HOME") {
        let home = Path::new(&home);
        out.push(home.join(".terraform.d/plugins"));
        out.push(home.join(".local/share/terraform/plugins"));
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME") {
        out.push(Path::new(&data).join("terraform/plugins"));
    }
    out.push("/usr/local/share/terraform/plugins".into());
    out.push("/usr/share/terraform/plugins".into());
    out
}

/// The CLI configuration the user's Terraform reads: `TF_CLI_CONFIG_FILE`, else
/// `~/.terraformrc` when there is one.
fn user_cli_config() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TF_CLI_CONFIG_FILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".terraformrc")).filter(|p| p.is_file())
}

/// The environment variable Terraform reads a host's API token from (`TF_TOKEN_app_terraform_io`),
/// if the host name can be written as one.
pub fn token_variable(host: &str) -> Option<String> {
    if host.is_empty() || !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
        return None;
    }
    Some(format!("TF_TOKEN_{}", host.replace('-', "__").replace('.', "_")))
}

impl UserConfig {
    /// Reads the user's CLI configuration (`work` is where Terraform will run, for its implied
    /// `terraform.d/plugins`); `Err` says what Stamp does not understand in it.
    pub fn read(work: &Path) -> Result<Self, String> {
        let (text, path) = match user_cli_config() {
            Some(path) => match fs_err::read_to_string(&path) {
                Ok(text) => (text, path),
                // Terraform runs without a CLI configuration it cannot find, and so does this.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), path),
                Err(e) => return Err(crate::diagnostics::io_reason(&e)),
            },
            None => (String::new(), PathBuf::new()),
        };
        let config = Self::parse(&text).map_err(|reason| format!("`{}`: {reason}", path.display()))?;
        if config.methods.is_empty()
            && let Some(found) = implied_mirrors().into_iter().map(|p| work.join(p)).find(|p| p.is_dir())
        {
            return Err(format!(
                "Terraform installs providers found in `{}` when no `provider_installation` is configured; \
                 Stamp does not reproduce that: name it in a `filesystem_mirror` block",
                found.display()
            ));
        }
        Ok(config)
    }

    /// The model of a configuration's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let body = hcl::parse(text).map_err(|e| format!("not read as HCL ({e})"))?;
        let mut out = Self::default();
        for structure in body.0 {
            match structure {
                Structure::Attribute(a) if DROPPED_ATTRIBUTES.contains(&a.key()) => {}
                Structure::Attribute(a) if KEPT_ATTRIBUTES.contains(&a.key()) => out.kept.push(Structure::Attribute(a)),
                Structure::Block(b) if b.identifier() == "provider_installation" => {
                    for method in b.body.0 {
                        match method {
                            Structure::Block(m) if METHODS.contains(&m.identifier()) => out.methods.push(m),
                            _ => return Err("`provider_installation` holds something other than its methods".into()),
                        }
                    }
                }
                Structure::Block(b) if b.identifier() == "credentials" => {
                    let host = b.labels().first().map(|l| l.as_str().to_string()).unwrap_or_default();
                    let token = b.body().0.iter().filter_map(Structure::as_attribute).find_map(|a| match a.expr() {
                        Expression::String(t) if a.key() == "token" => Some(t.clone()),
                        _ => None,
                    });
                    match (token_variable(&host), token) {
                        (Some(variable), Some(token)) => {
                            // The user's own variable wins, as it does in Terraform.
                            if std::env::var_os(&variable).is_none() {
                                out.tokens.push((variable, token));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "the credentials of `{host}` cannot be passed as a TF_TOKEN_ variable"
                            ));
                        }
                    }
                }
                Structure::Block(b) if matches!(b.identifier(), "host" | "credentials_helper") => {
                    out.kept.push(Structure::Block(b));
                }
                Structure::Attribute(a) => return Err(format!("the setting `{}` is not understood", a.key())),
                Structure::Block(b) => return Err(format!("the block `{}` is not understood", b.identifier())),
            }
        }
        Ok(out)
    }

    /// The configuration for `init`: the user's settings, and `mirror` as the only place
    /// `from_mirror` providers come from (every other provider as the user's installation
    /// methods say).
    pub fn render(&self, mirror: &Path, from_mirror: &[String]) -> Result<String, String> {
        let mut body = self.kept.clone();
        let mut installation = Vec::new();
        if !from_mirror.is_empty() {
            let listed: Vec<Expression> = from_mirror.iter().map(|s| Expression::String(s.clone())).collect();
            installation.push(Structure::Block(
                Block::builder("filesystem_mirror")
                    .add_attribute(("path", mirror.display().to_string()))
                    .add_attribute(("include", Expression::Array(listed)))
                    .build(),
            ));
        }
        let mut methods = self.methods.clone();
        if methods.is_empty() {
            methods.push(Block::new("direct"));
        }
        for mut method in methods {
            if method.identifier() != "dev_overrides" && !from_mirror.is_empty() {
                exclude(&mut method, from_mirror);
            }
            installation.push(Structure::Block(method));
        }
        body.push(Structure::Block(Block::builder("provider_installation").add_structures(installation).build()));
        let text = hcl::format::to_string(&Body(body)).map_err(|e| e.to_string())?;
        Ok(format!("# Written by stamp for `terraform init` with its provider cache; not for editing.\n{text}"))
    }
}

/// Adds `sources` to an installation method's `exclude` list.
fn exclude(block: &mut Block, sources: &[String]) {
    let mut listed: std::collections::BTreeSet<String> = sources.iter().cloned().collect();
    block.body.0.retain(|s| match s {
        Structure::Attribute(a) if a.key() == "exclude" => {
            if let Expression::Array(items) = a.expr() {
                listed.extend(items.iter().filter_map(|i| match i {
                    Expression::String(s) => Some(s.clone()),
                    _ => None,
                }));
            }
            false
        }
        _ => true,
    });
    let items = listed.into_iter().map(Expression::String).collect();
    block.body.0.push(Structure::Attribute(hcl::Attribute::new("exclude", Expression::Array(items))));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_variables_follow_terraform() {
        assert_eq!(token_variable("app.terraform.io").as_deref(), Some("TF_TOKEN_app_terraform_io"));
        assert_eq!(token_variable("my-host.example").as_deref(), Some("TF_TOKEN_my__host_example"));
        assert_eq!(token_variable("host:8443"), None);
        assert_eq!(token_variable("a\nb"), None);
    }

    #[test]
    fn settings_are_kept_tokens_moved_and_the_mirror_put_first() {
        let config = UserConfig::parse(
            "plugin_cache_dir = \"/tmp/c\"\ndisable_checkpoint = true\nhost \"example.com\" {\n  services = {}\n}\n\
             credentials \"my-registry.example\" {\n  token = \"s3cret\"\n}\n\
             provider_installation {\n  network_mirror {\n    url = \"https://mirror.example/\"\n    exclude = [\"a/b/c\"]\n  }\n  \
             dev_overrides {\n    x = \"/path\"\n  }\n}\n",
        )
        .unwrap();
        assert!(config.tokens.contains(&("TF_TOKEN_my__registry_example".into(), "s3cret".into())));
        let text = config.render(Path::new("/cache/mirror"), &["example.com/stamp/echo".into()]).unwrap();
        assert!(!text.contains("s3cret") && !text.contains("plugin_cache_dir"), "{text}");
        for kept in ["disable_checkpoint", "host \"example.com\"", "https://mirror.example/", "dev_overrides"] {
            assert!(text.contains(kept), "{kept}: {text}");
        }
        let mirror = text.find("filesystem_mirror").unwrap();
        assert!(mirror < text.find("network_mirror").unwrap(), "the mirror first: {text}");
        let network = &text[text.find("network_mirror").unwrap()..];
        assert!(network.contains("\"a/b/c\"") && network.contains("\"example.com/stamp/echo\""), "{text}");
        // Nothing from the mirror: the user's installation alone.
        let plain = config.render(Path::new("/cache/mirror"), &[]).unwrap();
        assert!(!plain.contains("filesystem_mirror") && !plain.contains("\"example.com/stamp/echo\""), "{plain}");
    }

    #[test]
    fn what_is_not_understood_is_refused_not_dropped() {
        for text in [
            "credentials = {\n  \"app.terraform.io\" = {\n    token = \"t\"\n  }\n}\n",
            "credentials \"host:8443\" {\n  token = \"t\"\n}\n",
            "provider_installation {\n  something_new {}\n}\n",
            "{\"provider_installation\": {}}",
            "unknown_setting = 1\n",
        ] {
            assert!(UserConfig::parse(text).is_err(), "{text}");
        }
    }
}
