//! Rendering: each account's blueprint templates with its effective config, Stamp's generated
//! files, an output guard against injection, formatting and an HCL check of every file.

pub mod blueprint;
pub mod filters;
pub mod fmt;
pub mod generated;
pub mod guard;
pub mod hcl_scan;
pub mod hcl_value;
pub mod tree;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use blueprint::Blueprint;
pub use tree::{Tree, TreeFile};

use crate::config::{Account, Project};
use crate::diagnostics::{Diagnostic, Location, did_you_mean};
use crate::hcl_check;
use crate::version::BuildVersion;

/// `stamp.*` in templates.
#[derive(Debug, Serialize)]
struct StampContext<'a> {
    account: &'a str,
    /// `blue` or `green`: which of the account's two side-by-side environments this is.
    slot: &'a str,
    /// The account's name in its slot (`<account>` or `<account>-green`): use it where names
    /// must be unique, so a migration can build the new version alongside the old.
    instance: String,
    environment: &'a str,
    archetype: &'a str,
    blueprint: &'a str,
    version: &'a str,
    commit: &'a str,
    environment_version: String,
}

/// Renders accounts of one project; blueprints are compiled once and shared between threads.
pub struct Renderer<'p> {
    project: &'p Project,
    blueprints: BTreeMap<String, Option<Blueprint>>,
    version: BuildVersion,
}

impl<'p> Renderer<'p> {
    /// Compiles every blueprint used by the project's archetypes.
    /// Compiles the blueprints of the archetypes in `only` (all when `None`).
    pub fn new(
        project: &'p Project,
        version: BuildVersion,
        only: Option<&std::collections::BTreeSet<&str>>,
    ) -> (Self, Vec<Diagnostic>) {
        let mut blueprints = BTreeMap::new();
        let mut diagnostics = Vec::new();
        let blueprints_folder = fs_err::canonicalize(project.root.join(&project.file.blueprints)).ok();
        for archetype in project.archetypes.values() {
            if only.is_some_and(|o| !o.contains(archetype.name.as_str())) {
                continue;
            }
            if archetype.backend() == crate::config::Backend::S3 && project.file.state.s3.is_none() {
                let pos = archetype.positions.value("/provider").map_or((1, 1), |p| (p.line, p.column));
                diagnostics.push(
                    Diagnostic::error("project.state", format!("archetype `{}` keeps state in S3, but `stamp.yaml` has no `state.s3`", archetype.name))
                        .at(Location::new(&archetype.display, pos.0, pos.1))
                        .hint("add `state: {s3: {bucket: ..., region: ...}}` to stamp.yaml, or set `backend:` in the archetype"),
                );
            }
            let name = &archetype.file.blueprint;
            if blueprints.contains_key(name) {
                continue;
            }
            let dir = project.blueprint_dir(name);
            // A blueprint holding another would render the other's files as its own; one
            // reached through a link out of the blueprints folder is not the project's.
            let holding = project
                .archetypes
                .values()
                .map(|a| &a.file.blueprint)
                .find(|other| *other != name && std::path::Path::new(other.as_str()).starts_with(name.as_str()));
            let refusal = holding
                .map(|other| {
                    Diagnostic::error("blueprint.nested", format!("blueprint `{name}` holds blueprint `{other}`"))
                        .hint("every file in a blueprint's folder is rendered: keep blueprints side by side, not one inside another")
                })
                .or_else(|| {
                    let found = fs_err::canonicalize(&dir).ok()?;
                    (!found.starts_with(blueprints_folder.as_ref()?)).then(|| {
                        Diagnostic::error(
                            "blueprint.outside",
                            format!("blueprint `{name}` leads out of `{}` through a link", project.file.blueprints.display()),
                        )
                        .hint("blueprints may only contain regular files, so rendering never reads outside the blueprints folder")
                    })
                });
            if let Some(refusal) = refusal {
                let pos = archetype.positions.value("/blueprint").map_or((1, 1), |p| (p.line, p.column));
                diagnostics.push(refusal.at(Location::new(&archetype.display, pos.0, pos.1)));
                blueprints.insert(name.clone(), None);
                continue;
            }
            let (blueprint, found) = Blueprint::load(name, &dir, project.display(&dir), &project.sources);
            diagnostics.extend(found.into_iter().map(|d| {
                if d.location.is_some() {
                    return d;
                }
                let pos = archetype.positions.value("/blueprint");
                d.at(pos.map_or_else(
                    || Location::file_only(&archetype.display),
                    |p| Location::new(&archetype.display, p.line, p.column).with_end_column(p.end_column.unwrap_or(0)),
                ))
            }));
            blueprints.insert(name.clone(), blueprint);
        }
        let uses_s3 = project
            .archetypes
            .values()
            .any(|a| only.is_none_or(|o| o.contains(a.name.as_str())) && a.backend() == crate::config::Backend::S3);
        if uses_s3 && project.file.state.s3.as_ref().is_some_and(|s| s.lock_table.is_some()) {
            diagnostics.push(
                Diagnostic::warning(
                    "project.lock-table",
                    "`state.s3.lock_table` is deprecated: Terraform >= 1.11 locks S3 state with a lock file (`use_lockfile`)",
                )
                .at(Location::file_only(crate::config::project::PROJECT_FILE))
                .hint("the backend keeps using the DynamoDB table too until you remove `lock_table` from stamp.yaml"),
            );
        }
        (Self { project, blueprints, version }, diagnostics)
    }

    pub fn version(&self) -> &BuildVersion {
        &self.version
    }

    /// The same blueprints, stamping `version` in.
    #[must_use]
    pub fn with_version(self, version: BuildVersion) -> Self {
        Self { version, ..self }
    }

    /// Whether a template of a compiled blueprint may read the version stamped in: if none
    /// does, the version changes only Stamp's own files, where it is always well-formed.
    pub fn reads_version(&self) -> bool {
        self.blueprints.values().flatten().any(|b| b.reads_version)
    }

    /// The cache key of what rendering an account of `archetype` depends on besides the
    /// account: the version stamped in and the compiled blueprint (`None`: it did not compile).
    pub fn key(&self, archetype: &str) -> Option<String> {
        let blueprint = self.project.archetypes.get(archetype)?.file.blueprint.as_str();
        let blueprint = self.blueprints.get(blueprint)?.as_ref()?;
        let mut key = crate::cache::Key::new("renderer")
            .field(&self.version.version)
            .field(&self.version.commit)
            .field(if self.version.dirty { "dirty" } else { "clean" })
            .field(&blueprint.digest);
        for (path, file) in &blueprint.verbatim {
            key = key.field(path).field(if file.executable { "x" } else { "-" });
        }
        Some(key.finish())
    }

    /// Renders one account as it would be written to `out_dir` (which only matters for the
    /// relative path of a local state file). An account whose blueprint did not compile gives
    /// an empty error list: the blueprint's own diagnostics say why.
    pub fn render(&self, account: &Account, out_dir: &Path) -> Result<Tree, Vec<Diagnostic>> {
        let project = self.project;
        let archetype = &project.archetypes[&account.archetype];
        let Some(Some(blueprint)) = self.blueprints.get(&archetype.file.blueprint) else {
            return Err(Vec::new());
        };
        let environment_version = self.version.environment_version();
        // File names can hold any character: in a comment they are escaped onto one line.
        let header_with = |source: &str, version: &str| {
            format!(
                "# Generated by Stamp from {}\n# for account `{}` ({}), version {version}.\n# Do not edit: change the blueprint or the account config and render again.\n\n",
                crate::text::one_line(source),
                account.name,
                crate::text::one_line(&account.display)
            )
        };
        let header = |source: &str| header_with(source, &environment_version);
        // The files as searched for secrets: with Stamp's own text of the version and commit
        // left out (it is no config value, and what `check` finds must not depend on it).
        let needles = secret_needles(account);
        let mut scanned: BTreeMap<String, Arc<[u8]>> = BTreeMap::new();
        let scan_header = |source: &str| header_with(source, "");
        let stamp = StampContext {
            account: &account.name,
            slot: account.slot.as_str(),
            instance: account.instance(),
            environment: account.environment(),
            archetype: &archetype.name,
            blueprint: &blueprint.name,
            version: &self.version.version,
            commit: &self.version.commit,
            environment_version: environment_version.clone(),
        };
        let sensitive = &account.sensitive;
        let config = if sensitive.is_empty() {
            minijinja::Value::from(minijinja::value::Serde(&account.effective))
        } else {
            minijinja::Value::from(minijinja::value::Serde(Masked {
                value: &account.effective,
                pointer: String::new(),
                sensitive,
            }))
        };
        let context = minijinja::context! {
            config => config,
            stamp => minijinja::Value::from(minijinja::value::Serde(&stamp)),
        };
        let out_display = project.display(out_dir);
        let mut files = BTreeMap::new();
        let mut diagnostics = Vec::new();
        for template in &blueprint.templates {
            let rendered = blueprint.env.get_template(&template.name).and_then(|t| t.render(&context));
            let text = match rendered {
                Ok(text) => text,
                Err(e) => {
                    let d = blueprint::template_error(&e, &blueprint.display, (&template.name, &template.source));
                    diagnostics.push(Self::suggest_key(d, account).for_account(&account.name));
                    continue;
                }
            };
            let template_display = format!("{}/{}", blueprint.display, template.name);
            let output_display = format!("{out_display}/{}", template.output);
            let misplaced = |misplaced: guard::Misplaced| {
                self.at_template(
                    Diagnostic::error("render.injection", misplaced.message).hint(misplaced.hint),
                    account,
                    &template_display,
                    &template.source,
                    &misplaced.line_text,
                )
            };
            let head = header(&template_display);
            // The same printed text passed the guard for another account, under another
            // header: a header of comments only leaves it read the same.
            let head_is_comments = hcl_check::is_only_comments(&head);
            if let Some(checked) = template.last_checked.of(&text).filter(|_| head_is_comments) {
                let text = format!("{head}{}", checked.text);
                if !needles.is_empty() {
                    let text = format!("{}{}", scan_header(&template_display), checked.text);
                    scanned.insert(template.output.clone(), text.into_bytes().into());
                }
                files
                    .insert(template.output.clone(), TreeFile { content: text.into_bytes().into(), executable: false });
                continue;
            }
            let printed = text;
            let guarded = match guard::check_and_format(&printed) {
                Ok(guarded) => guarded,
                Err(problem) => {
                    diagnostics.push(misplaced(problem));
                    continue;
                }
            };
            let text = format!("{head}{}", guarded.text);
            // One parse of the final file: its syntax, and the second reading of the guard.
            let body = match hcl_check::parse(&text) {
                Ok(body) => body,
                Err(e) => {
                    let rendered_line = text.lines().nth(e.line.saturating_sub(1)).unwrap_or("").to_string();
                    project.sources.add(output_display.clone(), text.as_str());
                    let d = Diagnostic::error("hcl.syntax", format!("rendered file is not valid HCL: {}", e.message))
                        .hint(format!(
                            "the rendered `{output_display}` line {} reads: `{}`",
                            e.line,
                            rendered_line.trim()
                        ));
                    diagnostics.push(self.at_template(d, account, &template_display, &template.source, &rendered_line));
                    continue;
                }
            };
            if let Err(problem) = guard::cross_check(&text, &body, &guarded.spans, head.len()) {
                diagnostics.push(misplaced(problem));
                continue;
            }
            // Kept only as checked under a header of comments, as it is used.
            if head_is_comments {
                template.last_checked.keep(blueprint::CheckedText { printed, text: guarded.text });
            }
            if !needles.is_empty() {
                let text = format!("{}{}", scan_header(&template_display), &text[head.len()..]);
                scanned.insert(template.output.clone(), text.into_bytes().into());
            }
            files.insert(template.output.clone(), TreeFile { content: text.into_bytes().into(), executable: false });
        }
        // Of the config without its secrets: a digest of a secret is a way to guess it.
        let config_digest = if sensitive.is_empty() && account.misshapen.is_empty() {
            digest_json(&account.effective)
        } else {
            digest_json(&crate::schema::redact::redacted(account))
        };
        let local_state_path = local_state_path(project, &account.instance(), out_dir);
        let lifetime = match crate::ephemeral::Lifetime::of(account) {
            Ok(lifetime) => lifetime,
            Err(problem) => {
                diagnostics.push(
                    Diagnostic::error("account.ephemeral", problem)
                        .at(Location::file_only(&account.display))
                        .for_account(&account.name),
                );
                None
            }
        };
        // Stamp's own files see the config without its secrets; one that would be written there
        // (a sensitive tag, say) is an error below.
        let masked;
        let generated_account = if sensitive.is_empty() {
            account
        } else {
            masked = Account {
                effective: crate::schema::redact::redact_at(&account.effective, sensitive),
                ..account.clone()
            };
            &masked
        };
        let facts = generated::Facts {
            project,
            account: generated_account,
            archetype,
            lifetime: lifetime.as_ref(),
            version: &self.version,
            local_state_path: &local_state_path,
            blueprint_digest: &blueprint.digest,
            config_digest: &config_digest,
        };
        let generated_source =
            format!("`{}` and `{}`", crate::config::project::PROJECT_FILE, project.display(&archetype.dir));
        if !needles.is_empty() {
            let unversioned = BuildVersion { version: String::new(), commit: String::new(), dirty: false };
            let facts = generated::Facts { version: &unversioned, ..facts };
            for (name, text) in generated::files(&facts) {
                let text = format!("{}{}", scan_header(&generated_source), fmt::format(&text));
                scanned.insert(name.to_string(), text.into_bytes().into());
            }
        }
        for (name, text) in generated::files(&facts) {
            let text = format!("{}{}", header(&generated_source), fmt::format(&text));
            debug_assert!(hcl_check::check(&text).is_ok(), "generated {name} must parse:\n{text}");
            if !sensitive.is_empty() && text.contains(crate::schema::redact::REDACTED) {
                diagnostics.push(
                    Diagnostic::error("render.sensitive", format!("a sensitive config value would be written into Stamp's `{name}`"))
                        .at(Location::file_only(&account.display))
                        .hint("tags, the account id, region and deploy role are written in clear: do not mark them `writeOnly`")
                        .for_account(&account.name),
                );
            }
            files.insert(name.to_string(), TreeFile { content: text.into_bytes().into(), executable: false });
        }
        for (path, file) in &blueprint.verbatim {
            let path_display = format!("{}/{path}", blueprint.display);
            let copied = format!("`{path_display}` (copied as it is)");
            let with_header = |head: String| -> Arc<[u8]> {
                let mut text = head.into_bytes();
                text.extend_from_slice(&file.content);
                text.into()
            };
            let is_tf = std::path::Path::new(path).extension().is_some_and(|e| e == "tf");
            let content = if is_tf { with_header(header(&copied)) } else { Arc::clone(&file.content) };
            if !needles.is_empty() {
                let text = if is_tf { with_header(scan_header(&copied)) } else { Arc::clone(&file.content) };
                scanned.insert(path.clone(), text);
            }
            if files.contains_key(path) {
                diagnostics.push(
                    Diagnostic::error(
                        "blueprint.conflict",
                        format!("`{path}` is both a template output and a plain file"),
                    )
                    .at(Location::file_only(format!("{}/{path}", blueprint.display))),
                );
            }
            files.insert(path.clone(), TreeFile { content, executable: file.executable });
        }
        diagnostics.extend(leaked_secrets(account, &needles, &scanned));
        if diagnostics.is_empty() { Ok(Tree { files }) } else { Err(diagnostics) }
    }

    /// Points a diagnostic about rendered text at the template line that produced it.
    fn at_template(
        &self,
        d: Diagnostic,
        account: &Account,
        template_display: &str,
        source: &str,
        rendered_line: &str,
    ) -> Diagnostic {
        let line = hcl_check::guess_template_line(source, rendered_line);
        let location = match line {
            Some(line) => {
                let text = source.lines().nth(line - 1).unwrap_or("");
                let column = text.find("{{").map_or(1, |i| text[..i].chars().count() + 1);
                Location::new(template_display, line, column)
            }
            None => Location::file_only(template_display),
        };
        let _ = self;
        d.at(location).for_account(&account.name)
    }

    /// For `undefined value config.a.b`, suggests the nearest existing key.
    fn suggest_key(d: Diagnostic, account: &Account) -> Diagnostic {
        if d.code != "render.undefined" {
            return d;
        }
        let Some(expr) = d.message.strip_prefix("undefined value `").and_then(|m| m.strip_suffix('`')) else {
            return d;
        };
        let mut segments = expr.split('.');
        if segments.next() != Some("config") {
            return d;
        }
        let mut node = &account.effective;
        for segment in segments {
            if let Some(child) = node.get(segment) {
                node = child;
            } else {
                if let Value::Object(map) = node
                    && let Some(near) = did_you_mean(segment, map.keys().map(String::as_str))
                {
                    return d.hint(format!("did you mean `{near}`?"));
                }
                return d;
            }
        }
        d
    }
}

/// Renders one template as a blueprint's template is rendered (the same environment, the same
/// output guard) against `config`: the text, or why not. For the property test and the fuzz
/// target of the guard, which need no project on disk.
pub fn render_template(source: &str, config: &Value) -> Result<String, String> {
    let mut env = blueprint::environment();
    env.add_template("template.tf.j2", source).map_err(|e| e.to_string())?;
    let context = minijinja::context! { config => minijinja::Value::from(minijinja::value::Serde(config)) };
    let text = env.get_template("template.tf.j2").and_then(|t| t.render(&context)).map_err(|e| e.to_string())?;
    let guarded = guard::check_and_format(&text).map_err(|m| format!("{} (line {})", m.message, m.line))?;
    let body = hcl_edit::parser::parse_body(&guarded.text).map_err(|e| format!("not HCL: {}", e.message()))?;
    guard::cross_check(&guarded.text, &body, &guarded.spans, 0)
        .map_err(|m| format!("{} (line {})", m.message, m.line))?;
    Ok(guarded.text)
}

/// `value` with the keys of every object sorted: the same text for the same value, whatever
/// order its maps were built or read in (layered config, PostgreSQL's `jsonb`).
pub fn sorted_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: BTreeMap<&String, Value> = map.iter().map(|(k, v)| (k, sorted_keys(v))).collect();
            Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted_keys).collect()),
        other => other.clone(),
    }
}

/// sha256 of a JSON value's canonical text (keys sorted).
pub fn digest_json(value: &Value) -> String {
    let text = serde_json::to_string(&sorted_keys(value)).expect("values serialise");
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// Where a local backend keeps the account's state, relative to the rendered root.
pub fn local_state_path(project: &Project, instance: &str, out_dir: &Path) -> String {
    let state = project.root.join(&project.file.state.local.dir).join(instance).join("terraform.tfstate");
    let out_dir = if out_dir.is_absolute() {
        out_dir.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(out_dir)
    };
    pathdiff::diff_paths(&state, &out_dir).unwrap_or(state).to_string_lossy().replace('\\', "/")
}

/// Sensitive values shorter than this cannot be told apart from ordinary text in output.
const MIN_SECRET_LEN: usize = 6;

/// The account's config as templates see it: sensitive values replaced by a stand-in that
/// refuses to be printed ([`hcl_value::Sensitive`]), so no template, filter or macro can
/// reach a secret.
struct Masked<'a> {
    value: &'a Value,
    pointer: String,
    sensitive: &'a std::collections::BTreeSet<String>,
}

impl Serialize for Masked<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        if self.sensitive.contains(&self.pointer) {
            let path = format!("config.{}", crate::schema::validator::dotted(&self.pointer));
            return minijinja::Value::from_object(hcl_value::Sensitive { path }).serialize(serializer);
        }
        let child = |value, pointer| Masked { value, pointer, sensitive: self.sensitive };
        match self.value {
            Value::Object(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (key, value) in map {
                    let pointer = format!("{}/{}", self.pointer, crate::config::yaml::escape_pointer(key));
                    out.serialize_entry(key, &child(value, pointer))?;
                }
                out.end()
            }
            Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for (index, value) in items.iter().enumerate() {
                    out.serialize_element(&child(value, format!("{}/{index}", self.pointer)))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// What [`leaked_secrets`] looks for: each sensitive value long enough to tell, raw and
/// escaped (as it appears inside an HCL string).
fn secret_needles(account: &Account) -> Vec<String> {
    if account.sensitive.is_empty() {
        return Vec::new();
    }
    crate::schema::redact::secrets_at(&account.effective, &account.sensitive)
        .into_iter()
        .filter(|s| s.len() >= MIN_SECRET_LEN)
        .flat_map(|s| [hcl_value::escape(&s), s])
        .collect()
}

/// A sensitive (`writeOnly`) config value written into rendered Terraform would reach state
/// files, artifacts, diffs and logs in clear: refused. Templates cannot read one (see
/// [`Masked`]); this catches one written by Stamp's own generated files (tags, provider).
fn leaked_secrets(account: &Account, needles: &[String], files: &BTreeMap<String, Arc<[u8]>>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (path, content) in files {
        let text = String::from_utf8_lossy(content);
        if needles.iter().any(|needle| text.contains(needle.as_str())) {
            out.push(
                Diagnostic::error("render.sensitive", format!("a sensitive config value is written into rendered `{path}`"))
                    .at(Location::file_only(&account.display))
                    .hint("values marked `writeOnly` in the schema must not be rendered: pass them as Terraform variables (TF_VAR_...) or read them from a secret store")
                    .for_account(&account.name),
            );
        }
    }
    out
}
