//! A blueprint compiled once and rendered for many accounts: its templates parsed into one
//! minijinja environment, its verbatim files read and HCL-checked once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use sha2::{Digest, Sha256};

use super::tree::{TreeFile, is_executable};
use super::{filters, fmt, hcl_value};
use crate::diagnostics::{Diagnostic, Location, Severity, Sources};
use crate::hcl_check;

/// A template of the blueprint that produces an output file.
#[derive(Debug)]
pub struct Template {
    /// Name inside the blueprint, e.g. `network.tf.j2` or `modules/db/main.tf.j2`.
    pub name: String,
    /// Output path: the name without `.j2`.
    pub output: String,
    pub source: Arc<str>,
    /// The last text this template printed that passed the output guard.
    pub last_checked: LastChecked,
}

/// The last text a template printed that passed the output guard, and what the guard made of
/// it. Most templates print the same text for many accounts: that text is checked once.
#[derive(Debug, Default)]
pub struct LastChecked(Mutex<Option<Arc<CheckedText>>>);

/// A template's printed text (values still marked) and its checked, formatted form.
#[derive(Debug)]
pub struct CheckedText {
    pub printed: String,
    pub text: String,
}

impl LastChecked {
    /// The checked form of `printed`, when it is the text last kept.
    pub fn of(&self, printed: &str) -> Option<Arc<CheckedText>> {
        let last = self.0.lock().map_or(None, |last| last.clone())?;
        (last.printed == printed).then_some(last)
    }

    pub fn keep(&self, checked: CheckedText) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some(Arc::new(checked));
        }
    }
}

/// A loaded, compiled blueprint.
pub struct Blueprint {
    pub name: String,
    pub dir: PathBuf,
    /// `blueprints/<name>` as shown to the user.
    pub display: String,
    pub env: Environment<'static>,
    pub templates: Vec<Template>,
    /// Files copied byte for byte, by output path.
    pub verbatim: Vec<(String, TreeFile)>,
    /// sha256 over every file's path and content.
    pub digest: String,
    /// Whether a template may read the version stamped in (see [`reads_version`]).
    pub reads_version: bool,
}

impl Blueprint {
    /// Loads and compiles the blueprint in `dir`. Errors (and fmt warnings) are diagnostics.
    pub fn load(name: &str, dir: &Path, display: String, sources: &Sources) -> (Option<Self>, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        if !dir.is_dir() {
            diagnostics.push(
                Diagnostic::error("blueprint.missing", format!("blueprint `{name}` does not exist"))
                    .hint(format!("expected a folder `{display}` with the blueprint's Terraform files")),
            );
            return (None, diagnostics);
        }
        let mut env = environment();

        let mut templates = Vec::new();
        let mut verbatim = Vec::new();
        let mut reads_version = false;
        let mut hasher = Sha256::new();
        // The bytes read so far: a blueprint is held in memory whole.
        let mut total = 0_u64;
        let walker = walkdir::WalkDir::new(dir).sort_by_file_name().follow_links(false);
        for entry in walker.into_iter().filter_entry(|e| e.file_name() != ".terraform") {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    diagnostics
                        .push(Diagnostic::error("blueprint.io", format!("cannot read blueprint `{display}`: {e}")));
                    continue;
                }
            };
            let below = entry.path().strip_prefix(dir).expect("walkdir stays below its root");
            let Some(relative) = portable(below) else {
                // Each entry but a folder (whose entries are named in turn): a link too.
                if !entry.file_type().is_dir() {
                    let shown = format!("{display}/{}", below.to_string_lossy());
                    diagnostics.push(
                        Diagnostic::error(
                            "blueprint.file-name",
                            format!("`{shown}`: a name in its path is not UTF-8 or holds a `\\`"),
                        )
                        .at(Location::file_only(&shown))
                        .hint("rename it: a rendered tree's names are plain names, the same on every system"),
                    );
                }
                continue;
            };
            let file_display = format!("{display}/{relative}");
            if entry.path_is_symlink() {
                diagnostics.push(
                    Diagnostic::error("blueprint.symlink", format!("`{file_display}` is a symbolic link"))
                        .at(Location::file_only(&file_display))
                        .hint(
                            "blueprints may only contain regular files, so rendering never reads outside the blueprint",
                        ),
                );
                continue;
            }
            if !entry.file_type().is_file() || is_state_file(&relative) {
                continue;
            }
            let file_name = entry.file_name().to_string_lossy();
            if file_name.starts_with("stamp_") && file_name.ends_with(".tf") || relative == super::tree::MARKER {
                diagnostics.push(
                    Diagnostic::error(
                        "blueprint.reserved-name",
                        format!("`{file_display}` uses a name Stamp reserves"),
                    )
                    .at(Location::file_only(&file_display))
                    .hint("Stamp generates `stamp_*.tf` files itself; rename this file"),
                );
                continue;
            }
            let bytes = match read_file(entry.path(), &mut total) {
                Ok(bytes) => bytes,
                Err(Unread::TooLarge(what)) => {
                    diagnostics.push(
                        Diagnostic::error("blueprint.too-large", format!("`{file_display}`: {what}"))
                            .at(Location::file_only(&file_display))
                            .hint("every account's tree holds a copy of each blueprint file: keep large packages (a Lambda's) in object storage and name them in Terraform"),
                    );
                    continue;
                }
                Err(Unread::Io(e)) => {
                    diagnostics.push(Diagnostic::error(
                        "io.read",
                        format!("cannot read `{file_display}`: {}", crate::diagnostics::io_reason(&e)),
                    ));
                    continue;
                }
            };
            hasher.update(relative.as_bytes());
            hasher.update([0]);
            hasher.update(&bytes);
            hasher.update([0]);
            if relative.ends_with(".j2") {
                let Ok(source) = String::from_utf8(bytes) else {
                    diagnostics
                        .push(Diagnostic::error("blueprint.encoding", format!("`{file_display}` is not UTF-8 text")));
                    continue;
                };
                if let Some(at) = source.find(hcl_value::is_marker) {
                    let line = source[..at].matches('\n').count() + 1;
                    diagnostics.push(
                        Diagnostic::error(
                            "blueprint.reserved-character",
                            format!("`{file_display}` holds a character Stamp reserves (U+E000 to U+E006)"),
                        )
                        .at(Location::file_only(&file_display).on_line(line))
                        .hint(
                            "Stamp marks printed values with these private-use characters: remove it from the template",
                        ),
                    );
                    continue;
                }
                sources.add(file_display.clone(), source.as_str());
                reads_version |= self::reads_version(&source);
                if let Err(e) = env.add_template_owned(relative.clone(), source.clone()) {
                    diagnostics.push(template_error(&e, &display, (&relative, &source)));
                    continue;
                }
                if let Some(output) = relative.strip_suffix(".j2").filter(|o| o.ends_with(".tf")) {
                    templates.push(Template {
                        name: relative.clone(),
                        output: output.to_string(),
                        source: source.into(),
                        last_checked: LastChecked::default(),
                    });
                }
            } else {
                if relative.ends_with(".tf") {
                    check_verbatim(&bytes, &file_display, sources, &mut diagnostics);
                }
                let executable = entry.metadata().is_ok_and(|m| is_executable(&m));
                verbatim.push((relative, TreeFile { content: bytes.into(), executable }));
            }
        }
        let digest = format!("{:x}", hasher.finalize());
        let failed = diagnostics.iter().any(|d| d.severity == Severity::Error);
        let blueprint = Self {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            display,
            env,
            templates,
            verbatim,
            digest,
            reads_version,
        };
        (if failed { None } else { Some(blueprint) }, diagnostics)
    }
}

/// The largest blueprint file Stamp reads, and the most it reads of one blueprint: a blueprint
/// is held in memory whole, and a file of a revision can pack a gigabyte into a few.
pub const MAX_FILE_BYTES: u64 = 64 << 20;
pub const MAX_BLUEPRINT_BYTES: u64 = 256 << 20;

/// Why a blueprint file was not read.
enum Unread {
    TooLarge(String),
    Io(std::io::Error),
}

/// The bytes of the plain file at `path`, read only within [`MAX_FILE_BYTES`] and while the
/// blueprint's `total` stays within [`MAX_BLUEPRINT_BYTES`] (whatever size the file claims).
fn read_file(path: &Path, total: &mut u64) -> Result<Vec<u8>, Unread> {
    let limit = MAX_FILE_BYTES.min(MAX_BLUEPRINT_BYTES - *total);
    let bytes = crate::fsio::read_plain(path, limit).map_err(|e| {
        if e.kind() != std::io::ErrorKind::FileTooLarge {
            Unread::Io(e)
        } else if limit == MAX_FILE_BYTES {
            Unread::TooLarge(format!("a blueprint file is at most {} MiB, this one is larger", MAX_FILE_BYTES >> 20))
        } else {
            Unread::TooLarge(format!(
                "a blueprint's files are at most {} MiB together, these are more",
                MAX_BLUEPRINT_BYTES >> 20
            ))
        }
    })?;
    *total += bytes.len() as u64;
    Ok(bytes)
}

/// The fields of `stamp.*` that do not depend on the version stamped in.
const UNVERSIONED: &[&str] = &["account", "slot", "instance", "environment", "archetype", "blueprint"];

/// Whether a template's source may read the version stamped in (`stamp.version`,
/// `stamp.commit`, `stamp.environment_version`, `stamp` as a whole, or the context through
/// `debug()`). Told from minijinja's own tokens, so it errs towards yes: the variable `stamp`
/// may only be followed by `.` and one of [`UNVERSIONED`]; text outside tags does not count.
pub fn reads_version(source: &str) -> bool {
    use minijinja::machinery::{Token, tokenize};
    let mut tokens = tokenize(source, false, minijinja::syntax::SyntaxConfig::default());
    let mut after_dot = false;
    while let Some(token) = tokens.next() {
        let Ok((token, _)) = token else { return true };
        match token {
            Token::Ident("debug") => return true,
            // `x.stamp` is an attribute, not the variable.
            Token::Ident("stamp") if !after_dot => match (tokens.next(), tokens.next()) {
                (Some(Ok((Token::Dot, _))), Some(Ok((Token::Ident(field), _)))) if UNVERSIONED.contains(&field) => {}
                _ => return true,
            },
            _ => {}
        }
        after_dot = matches!(token, Token::Dot);
    }
    false
}

/// The template environment every blueprint is compiled in: strict about undefined values,
/// every printed value escaped and marked for the output guard ([`hcl_value::format_value`]),
/// Stamp's filters added and the ones that print text unescaped removed.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::Custom("hcl".into()));
    env.set_formatter(hcl_value::format_value);
    filters::register(&mut env);
    // These print text as it is, past the output guard: a config value could become HCL.
    for unsafe_filter in ["safe", "escape", "e", "tojson"] {
        env.remove_filter(unsafe_filter);
    }
    plain_filters(&mut env);
    bounded_filters(&mut env);
    // Every render is bounded: a loop over a value from a config cannot run without end.
    env.set_fuel(Some(FUEL));
    env
}

/// Instructions one template may run per render (thousands of times what a blueprint needs).
const FUEL: u64 = 50_000_000;

/// The most a count or width taken by a filter may be: beyond it, `indent`, `slice` and
/// `batch` would allocate without bound for a number that came from a config.
const MAX_COUNT: u64 = 10_000;

/// `indent`, `slice` and `batch` with their count checked first.
fn bounded_filters(env: &mut Environment<'static>) {
    use minijinja::filters as f;
    use minijinja::value::{Rest, Value};
    let builtins = [
        ("indent", Value::from_function(f::indent)),
        ("slice", Value::from_function(f::slice)),
        ("batch", Value::from_function(f::batch)),
    ];
    for (name, filter) in builtins {
        env.add_filter(name, move |state: &mut minijinja::State<'_, '_>, args: Rest<Value>| {
            if let Some(count) = args.get(1).and_then(|v| u64::try_from(v.clone()).ok())
                && count > MAX_COUNT
            {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("`{name}` takes a count of at most {MAX_COUNT}, not {count}"),
                ));
            }
            filter.call(state, &args).map(|value| plain(&value))
        });
    }
}

/// minijinja's string filters keep text "safe" (printed as it is) when it was: the output of a
/// macro or a `{% set %}` block, in which printed values sit between the guard's markers. Cut
/// by such a filter, a value could lose its markers and still print as it is. These filters
/// therefore return plain text, which prints escaped like any string value.
fn plain_filters(env: &mut Environment<'static>) {
    use minijinja::filters as f;
    use minijinja::value::{Rest, Value};
    let builtins = [
        ("upper", Value::from_function(f::upper)),
        ("lower", Value::from_function(f::lower)),
        ("capitalize", Value::from_function(f::capitalize)),
        ("replace", Value::from_function(f::replace)),
        ("reverse", Value::from_function(f::reverse)),
        ("trim", Value::from_function(f::trim)),
        ("join", Value::from_function(f::join)),
        ("split", Value::from_function(f::split)),
        ("lines", Value::from_function(f::lines)),
        ("first", Value::from_function(f::first)),
        ("last", Value::from_function(f::last)),
        ("format", Value::from_function(f::format)),
        ("list", Value::from_function(f::list)),
    ];
    for (name, filter) in builtins {
        env.add_filter(name, move |state: &mut minijinja::State<'_, '_>, args: Rest<Value>| {
            filter.call(state, &args).map(|value| plain(&value))
        });
    }
}

/// The value with every safe string in it (or in its list) made a plain string.
fn plain(value: &minijinja::Value) -> minijinja::Value {
    use minijinja::value::{Value, ValueKind};
    if value.is_safe() {
        return Value::from(value.as_str().unwrap_or_default().to_string());
    }
    match value.kind() {
        ValueKind::Seq => value
            .try_iter()
            .map_or_else(|_| value.clone(), |items| Value::from(items.map(|v| plain(&v)).collect::<Vec<_>>())),
        _ => value.clone(),
    }
}

fn is_state_file(relative: &str) -> bool {
    let name = relative.rsplit('/').next().unwrap_or(relative);
    name.ends_with(".tfstate") || name.ends_with(".tfstate.backup") || name.ends_with(".tfplan")
}

/// A verbatim `.tf` file must parse, and should already be `terraform fmt`-clean.
fn check_verbatim(bytes: &[u8], file_display: &str, sources: &Sources, diagnostics: &mut Vec<Diagnostic>) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        diagnostics.push(Diagnostic::error("blueprint.encoding", format!("`{file_display}` is not UTF-8 text")));
        return;
    };
    sources.add(file_display.to_string(), text);
    if let Err(e) = hcl_check::check(text) {
        diagnostics.push(Diagnostic::error("hcl.syntax", format!("invalid HCL: {}", e.message)).at(Location::new(
            file_display,
            e.line,
            e.column,
        )));
    } else if fmt::format(text) != text {
        let mut d = Diagnostic::error("hcl.fmt", format!("`{file_display}` is not `terraform fmt`-clean"))
            .at(Location::file_only(file_display))
            .hint("run `terraform fmt` on the blueprint: plain `.tf` files are copied as they are");
        d.severity = Severity::Warning;
        diagnostics.push(d);
    }
}

/// A minijinja error as a diagnostic pointing at the template line.
/// `fallback` is the name and source of the template being rendered, for errors minijinja
/// reports without their source; an error in another template (an included one, a macro's)
/// then gets its line only.
pub fn template_error(error: &minijinja::Error, blueprint_display: &str, fallback: (&str, &str)) -> Diagnostic {
    let name = error.name().unwrap_or("template");
    let file = format!("{blueprint_display}/{name}");
    let source = error.template_source().or_else(|| (error.name() == Some(fallback.0)).then_some(fallback.1));
    let line = error.line().unwrap_or(1);
    // Only a range that lies on character boundaries of the right source is used.
    let range = source.zip(error.range()).filter(|(source, range)| source.get(range.clone()).is_some()).map(
        |(source, range)| {
            // An undefined attribute's range starts at the `.`: widen it to the whole path.
            let widened = source[..range.start]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .map_or(0, |i| i + 1);
            let range = if error.kind() == minijinja::ErrorKind::UndefinedError { widened..range.end } else { range };
            (source, range)
        },
    );
    let (column, end, snippet) = match range {
        Some((source, range)) => {
            let line_start = source[..range.start].rfind('\n').map_or(0, |i| i + 1);
            let column = source[line_start..range.start].chars().count() + 1;
            let snippet = &source[range];
            let end = (!snippet.contains('\n')).then(|| column + snippet.chars().count());
            (column, end, Some(snippet.trim().to_string()))
        }
        None => (1, None, None),
    };
    let detail = error.detail().map_or_else(|| error.kind().to_string(), str::to_string);
    let (code, message) = match (error.kind(), &snippet) {
        (minijinja::ErrorKind::UndefinedError, Some(expr)) => ("render.undefined", format!("undefined value `{expr}`")),
        (minijinja::ErrorKind::UndefinedError, None) => ("render.undefined", "undefined value".to_string()),
        (minijinja::ErrorKind::SyntaxError, _) => ("render.syntax", format!("template syntax error: {detail}")),
        (minijinja::ErrorKind::TemplateNotFound, _) => {
            ("render.not-found", format!("{detail} (templates can only include files of their own blueprint)"))
        }
        _ => ("render.error", detail.clone()),
    };
    let mut location = Location::new(file, line, column);
    if let Some(end) = end {
        location = location.with_end_column(end);
    }
    let mut d = Diagnostic::error(code, message).at(location);
    if error.kind() == minijinja::ErrorKind::UnknownFilter
        && ["safe", "tojson", "escape", "| e "].iter().any(|f| detail.contains(f))
    {
        d = d.hint("Stamp removes the filters that print text unescaped (`safe`, `escape`, `tojson`): print values as they are (escaped) or as HCL literals with `| hcl`, e.g. `jsonencode({{ value | hcl }})`");
    }
    if code == "render.undefined" {
        d = d.hint("the account config has no such value; guard optional keys with `{% if x is defined %}` or use `| default(...)`");
    }
    d
}

/// A path below a blueprint, its names joined with `/`: `None` when a name is not UTF-8 or
/// holds a `\\`. That is a separator on Windows and a plain character on Unix, where turning
/// it into `/` would make a name such as `..\\..\\x` a path out of the tree.
fn portable(below: &Path) -> Option<String> {
    let mut out = String::new();
    for component in below.components() {
        let std::path::Component::Normal(name) = component else { return None };
        let name = name.to_str().filter(|name| !name.contains('\\'))?;
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(name);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{MAX_BLUEPRINT_BYTES, MAX_FILE_BYTES, Unread, read_file, reads_version};

    #[test]
    fn a_blueprint_is_read_within_its_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs_err::write(&path, "0123456789").unwrap();
        let refused = |total: u64| match read_file(&path, &mut total.clone()) {
            Err(Unread::TooLarge(why)) => why,
            other => panic!("read: {:?}", other.map_err(|_| ())),
        };
        let mut total = MAX_BLUEPRINT_BYTES - 10;
        assert_eq!(read_file(&path, &mut total).ok(), Some(b"0123456789".to_vec()));
        assert_eq!(total, MAX_BLUEPRINT_BYTES);
        assert_eq!(
            refused(MAX_BLUEPRINT_BYTES - 9),
            "a blueprint's files are at most 256 MiB together, these are more"
        );
        fs_err::File::create(&path).unwrap().set_len(MAX_FILE_BYTES + 1).unwrap();
        assert_eq!(refused(0), "a blueprint file is at most 64 MiB, this one is larger");
    }

    #[test]
    fn a_template_reads_the_version_unless_it_names_only_unversioned_fields() {
        for unversioned in [
            "name = \"{{ stamp.instance }}\"",
            "{% if stamp.slot == \"green\" %}-green{% endif %}{{ stamp . account }}",
            "{{ stamp.environment }}{{ stamp.archetype }}{{ stamp.blueprint }}",
            "resource \"x\" \"stamp_y\" { a = timestamp() }\n# made by stamp, see stamp.version",
            "{{ config.stamp_version }}{{ config.stamp.version }}{# stamp.version #}",
            "{% raw %}{{ stamp.version }}{% endraw %}",
            "{{ stamp.account.stamp }}{{- stamp . slot -}}",
        ] {
            assert!(!reads_version(unversioned), "{unversioned}");
        }
        for reading in [
            "{{ stamp.version }}",
            "{{ stamp.commit }}",
            "{{ stamp.environment_version }}",
            "{{ stamp.instances }}",
            "{{ stamp['version'] }}",
            "{% set s = stamp %}{{ s.version }}",
            "{{ stamp|items }}",
            "{% include stamp.version ~ '.j2' %}",
            "{{ m(stamp) }}",
            "{{ debug() }}",
            "{{ stamp }}",
            "{{ '}}' ~ stamp.version }}",
            "{% set stamp = {'account': 1} %}",
            "{{- stamp.version -}}",
            "{{ stamp\n  .\n  version }}",
            "{% for k in stamp %}{{ k }}{% endfor %}",
            "{% with s = stamp %}{{ s.account }}{% endwith %}",
            "{{ stamp.account.stamp }}{{ stamp.version }}",
        ] {
            assert!(reads_version(reading), "{reading}");
        }
    }
}
