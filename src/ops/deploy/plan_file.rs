//! What a Terraform plan file (`plan -out`, a zip archive) holds that ties it to one account:
//! the state it was made against (`tfstate`) and the configuration Terraform will apply
//! (`tfconfig/`). `terraform apply PLANFILE` writes to the backend and applies the configuration
//! the plan file holds, whatever folder it runs in: a saved plan is taken for an account's only
//! when these are the account's own, never by what the file around it says.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

/// The most of a plan file's state and configuration Stamp reads.
const MAX_READ: u64 = 256 << 20;
/// The most of one configuration file Stamp reads from the work folder to compare.
const MAX_FILE: u64 = 64 << 20;

/// The state and configuration a plan file was made from.
#[derive(Debug)]
pub struct PlanFile {
    /// The prior state's lineage (empty for a plan made before there was a state) and serial.
    pub lineage: String,
    pub serial: u64,
    /// How many resources the prior state holds.
    pub resources: usize,
    /// The backend `terraform apply PLANFILE` writes to: its type, settings and workspace.
    pub backend: Backend,
    /// Each module of the configuration, by its key (`""` for the root, `db`, `db.inner`): the
    /// folder Terraform read it from, and its files by name.
    pub modules: BTreeMap<String, (String, BTreeMap<String, Vec<u8>>)>,
}

impl PlanFile {
    /// Reads the plan file `bytes`.
    pub fn read(bytes: &[u8]) -> Result<Self, String> {
        let mut archive =
            zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("not a Terraform plan file: {e}"))?;
        // Two entries of one name: this reader sees the last, Terraform reads the first `tfplan`
        // and `tfstate`. The zip library keeps one entry per name and says nothing (it has no
        // way to ask yet, zip-rs/zip2#841), so the count its end record gives is compared.
        if listed_entries(bytes)? != archive.len() {
            return Err("it holds two entries of one name".into());
        }
        let all: Vec<String> = archive.file_names().filter_map(Result::ok).map(std::borrow::Cow::into_owned).collect();
        let mut budget = MAX_READ;
        let mut entry = |name: &str| -> Result<Vec<u8>, String> {
            let file = archive.by_name(name).map_err(|e| format!("its `{name}`: {e}"))?;
            let mut bytes = Vec::new();
            file.take(budget + 1).read_to_end(&mut bytes).map_err(|e| format!("its `{name}`: {e}"))?;
            budget = budget.checked_sub(bytes.len() as u64).ok_or_else(|| "it is too large to read".to_string())?;
            Ok(bytes)
        };
        let state: serde_json::Value =
            serde_json::from_slice(&entry("tfstate")?).map_err(|e| format!("its state is not JSON: {e}"))?;
        let backend = Backend::of_plan(&entry("tfplan")?).map_err(|e| format!("its backend cannot be read: {e}"))?;
        let records: Vec<ModuleRecord> = serde_json::from_slice(&entry("tfconfig/modules.json")?)
            .map_err(|e| format!("its module list is not JSON: {e}"))?;
        // Each entry's module (a key holds no `/`; a file name that does is refused below).
        let mut files_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for name in &all {
            let Some(rest) = name.strip_prefix("tfconfig/m-") else { continue };
            let Some((key, file)) = rest.split_once('/') else { continue };
            files_of.entry(key).or_default().push(file);
        }
        let mut modules = BTreeMap::new();
        for record in records {
            let mut files = BTreeMap::new();
            for file in files_of.get(record.key.as_str()).into_iter().flatten() {
                files.insert((*file).to_string(), entry(&format!("tfconfig/m-{}/{file}", record.key))?);
            }
            if modules.insert(record.key.clone(), (record.dir, files)).is_some() {
                return Err(format!("its module list names `{}` twice", record.key));
            }
        }
        Ok(Self {
            lineage: state.get("lineage").and_then(serde_json::Value::as_str).unwrap_or_default().to_string(),
            serial: state.get("serial").and_then(serde_json::Value::as_u64).unwrap_or_default(),
            resources: state.get("resources").and_then(serde_json::Value::as_array).map_or(0, Vec::len),
            backend,
            modules,
        })
    }

    /// Why the backend this plan writes to is not the one `init` set up for the account in
    /// `data` (the folder `TF_DATA_DIR` names), if it is not.
    pub fn backend_differs(&self, data: &Path) -> Option<String> {
        let path = data.join("terraform.tfstate");
        let set_up = crate::fsio::read_plain(&path, MAX_FILE)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|state| state.get("backend").cloned());
        let Some(set_up) = set_up else {
            return Some("the backend `init` set up for the account cannot be read".into());
        };
        let kind = set_up.get("type").and_then(serde_json::Value::as_str).unwrap_or_default();
        let config = set_up.get("config").cloned().unwrap_or_default();
        if self.backend.kind != kind || without_nulls(&self.backend.config) != without_nulls(&config) {
            return Some(format!("it writes to another backend (`{}`) than the account's", self.backend.kind));
        }
        (self.backend.workspace != "default").then(|| {
            format!(
                "it writes to the workspace `{}`, not `default` (Stamp keeps one state per account)",
                crate::text::one_line(&self.backend.workspace)
            )
        })
    }

    /// Why the configuration this plan applies is not the one in the work folder `work` (the
    /// tree the policies checked, and the modules `init` installed, as listed in `data`, the
    /// folder `TF_DATA_DIR` names), if it is not: the modules differ (by key or folder), or a
    /// module's file differs from the one in its folder, or a Terraform file there is missing.
    pub fn differs_from(&self, work: &Path, data: &Path) -> Option<String> {
        let installed = match installed_modules(data) {
            Ok(installed) => installed,
            Err(e) => return Some(e),
        };
        let planned: BTreeMap<&str, &str> = self.modules.iter().map(|(k, (d, _))| (k.as_str(), d.as_str())).collect();
        let wanted: BTreeMap<&str, &str> = installed.iter().map(|(k, d)| (k.as_str(), d.as_str())).collect();
        if planned != wanted {
            return Some("its modules are not the ones installed for the tree rendered now".into());
        }
        for (key, (dir, files)) in &self.modules {
            let folder = work.join(dir);
            let shown = |name: &str| if key.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
            for (name, bytes) in files {
                if name.contains(['/', '\\']) || name == ".." {
                    return Some(format!("it holds a file named `{}`", crate::text::one_line(name)));
                }
                match crate::fsio::read_plain(&folder.join(name), MAX_FILE) {
                    Ok(there) if there == *bytes => {}
                    Ok(_) => return Some(format!("its `{}` is not the one rendered now", shown(name))),
                    Err(_) => return Some(format!("it holds `{}`, which is not rendered now", shown(name))),
                }
            }
            let Ok(entries) = fs_err::read_dir(&folder) else {
                return Some(format!("the folder of its module `{key}` cannot be read"));
            };
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name().to_string_lossy().into_owned();
                if read_by_terraform(&name)
                    && entry.file_type().is_ok_and(|t| t.is_file())
                    && !files.contains_key(&name)
                {
                    return Some(format!("it does not hold `{}`, which is rendered now", shown(&name)));
                }
            }
        }
        None
    }
}

/// How many entries the zip archive `bytes` lists, as its end of central directory record says.
/// Terraform writes that record last, with no comment, and no Zip64 record: anything else is
/// refused rather than read otherwise than Terraform would.
fn listed_entries(bytes: &[u8]) -> Result<usize, String> {
    const END: &[u8] = b"PK\x05\x06";
    let record = bytes.len().checked_sub(22).and_then(|at| bytes.get(at..)).ok_or("it is no zip archive")?;
    let field = |at: usize| u16::from_le_bytes([record[at], record[at + 1]]);
    if &record[..4] != END || field(20) != 0 {
        return Err("its zip archive does not end as Terraform writes it".into());
    }
    let (on_this_disk, total) = (field(8), field(10));
    if total == u16::MAX || on_this_disk != total {
        return Err("its zip archive is not one Terraform writes".into());
    }
    Ok(usize::from(total))
}

/// The backend a plan file's `tfplan` (Terraform's protocol buffer) records.
#[derive(Debug)]
pub struct Backend {
    pub kind: String,
    /// Its settings, from their `MessagePack` encoding.
    pub config: serde_json::Value,
    pub workspace: String,
}

impl Backend {
    /// The backend field (13) of the `Plan` message, a `Backend` message: `type` (1),
    /// `config` (2, a `DynamicValue` whose field 1 is `MessagePack`) and `workspace` (3).
    fn of_plan(tfplan: &[u8]) -> Result<Self, String> {
        let backend = delimited(tfplan)?.into_iter().rev().find(|(tag, _)| *tag == 13).map(|(_, b)| b);
        let backend = backend.ok_or("the plan records none")?;
        let (mut kind, mut msgpack, mut workspace) = (String::new(), None, String::new());
        for (tag, bytes) in delimited(backend)? {
            match tag {
                1 => kind = String::from_utf8(bytes.to_vec()).map_err(|_| "its type is not text")?,
                2 => msgpack = delimited(bytes)?.into_iter().rev().find(|(t, _)| *t == 1).map(|(_, b)| b),
                3 => workspace = String::from_utf8(bytes.to_vec()).map_err(|_| "its workspace is not text")?,
                _ => {}
            }
        }
        let value = rmpv::decode::read_value(&mut msgpack.unwrap_or_default()).map_err(|e| e.to_string())?;
        let config = serde_json::to_value(&value).map_err(|e| e.to_string())?;
        Ok(Self { kind, config, workspace })
    }
}

/// The length-delimited fields of a protocol buffer message, by tag (the others skipped).
fn delimited(mut buf: &[u8]) -> Result<Vec<(u32, &[u8])>, String> {
    use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
    let mut fields = Vec::new();
    while !buf.is_empty() {
        let (tag, wire) = decode_key(&mut buf).map_err(|e| e.to_string())?;
        if wire == WireType::LengthDelimited {
            let len = usize::try_from(decode_varint(&mut buf).map_err(|e| e.to_string())?).unwrap_or(usize::MAX);
            let field = buf.get(..len).ok_or("a field is cut short")?;
            fields.push((tag, field));
            buf = &buf[len..];
        } else {
            skip_field(wire, tag, &mut buf, DecodeContext::default()).map_err(|e| e.to_string())?;
        }
    }
    Ok(fields)
}

/// `value` without the settings that are null (Terraform writes every setting of a backend's
/// schema, set or not).
fn without_nulls(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect(),
        ),
        other => other.clone(),
    }
}

/// Whether Terraform reads the file `name` of a module's folder as configuration (it passes
/// over hidden files and editors' backups).
fn read_by_terraform(name: &str) -> bool {
    (name.ends_with(".tf") || name.ends_with(".tf.json"))
        && !name.starts_with('.')
        && !name.starts_with('#')
        && !name.ends_with('~')
}

#[derive(serde::Deserialize)]
struct ModuleRecord {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Dir")]
    dir: String,
}

/// The modules `init` installed (Terraform's manifest in `data`, the `TF_DATA_DIR`), by key:
/// their folders. Without a manifest, the root module alone.
fn installed_modules(data: &Path) -> Result<BTreeMap<String, String>, String> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(rename = "Modules")]
        modules: Vec<ModuleRecord>,
    }
    let path = data.join("modules/modules.json");
    let bytes = match crate::fsio::read_plain(&path, MAX_FILE) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(std::iter::once((String::new(), ".".to_string())).collect());
        }
        Err(e) => return Err(format!("the modules `init` installed cannot be read: {e}")),
    };
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| format!("the modules `init` installed cannot be read: {e}"))?;
    Ok(manifest.modules.into_iter().map(|m| (m.key, m.dir)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Plan` message holding only its backend (field 13): `local`, its `path` and
    /// `workspace_dir` (null) in `MessagePack`, the workspace `default`.
    const TFPLAN: &[u8] = b"j+\n\x05local\x12\x19\n\x17\x82\xa4path\xa1s\xadworkspace_dir\xc0\x1a\x07default";

    #[test]
    fn the_backend_is_read_from_the_plan_and_compared_with_inits() {
        let dir = tempfile::tempdir().unwrap();
        let plan = PlanFile::read(&plan_file(&[
            ("tfplan", TFPLAN),
            ("tfstate", b"{}"),
            ("tfconfig/modules.json", br#"[{"Key": "", "Dir": "."}]"#),
        ]))
        .unwrap();
        assert_eq!((plan.backend.kind.as_str(), plan.backend.workspace.as_str()), ("local", "default"));
        assert_eq!(plan.backend.config, serde_json::json!({"path": "s", "workspace_dir": null}));
        let set_up = |path: &str| {
            let state =
                serde_json::json!({"backend": {"type": "local", "config": {"path": path, "workspace_dir": null}}});
            fs_err::write(dir.path().join("terraform.tfstate"), state.to_string()).unwrap();
        };
        set_up("s");
        assert_eq!(plan.backend_differs(dir.path()), None);
        set_up("../../state/local-prod/terraform.tfstate");
        assert_eq!(
            plan.backend_differs(dir.path()).unwrap(),
            "it writes to another backend (`local`) than the account's"
        );
    }

    fn plan_file(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        for (name, text) in files {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut zip, text).unwrap();
        }
        zip.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn a_plan_is_the_work_folders_only_with_its_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let (work, data) = (dir.path().join("work"), dir.path().join("data"));
        fs_err::create_dir_all(work.join("modules/db")).unwrap();
        fs_err::create_dir_all(data.join("modules")).unwrap();
        fs_err::write(work.join("main.tf"), "a").unwrap();
        fs_err::write(work.join(".hidden.tf"), "ignored by Terraform").unwrap();
        fs_err::write(work.join("modules/db/main.tf"), "b").unwrap();
        let installed = r#"{"Modules": [{"Key": "", "Source": "", "Dir": "."}, {"Key": "db", "Source": "./modules/db", "Dir": "modules/db"}]}"#;
        fs_err::write(data.join("modules/modules.json"), installed).unwrap();
        let read = |modules: &str, root: &str| {
            PlanFile::read(&plan_file(&[
                ("tfplan", TFPLAN),
                ("tfstate", br#"{"lineage": "l-1", "serial": 7, "resources": [{}, {}]}"#),
                ("tfconfig/modules.json", modules.as_bytes()),
                ("tfconfig/m-/main.tf", root.as_bytes()),
                ("tfconfig/m-db/main.tf", b"b"),
            ]))
            .unwrap()
        };
        let modules = r#"[{"Key": "", "Dir": "."}, {"Key": "db", "Dir": "modules/db"}]"#;
        let plan = read(modules, "a");
        assert_eq!((plan.lineage.as_str(), plan.serial, plan.resources), ("l-1", 7, 2));
        assert_eq!(plan.differs_from(&work, &data), None);
        assert_eq!(
            read(modules, "evil").differs_from(&work, &data).unwrap(),
            "its `main.tf` is not the one rendered now"
        );
        // The root read from elsewhere, the files rendered now under a module nobody calls.
        let moved_root = r#"[{"Key": "", "Dir": ".terraform/evil"}, {"Key": "db", "Dir": "modules/db"}]"#;
        assert!(read(moved_root, "a").differs_from(&work, &data).unwrap().contains("its modules are not the ones"));
        fs_err::write(work.join("extra.tf"), "x").unwrap();
        assert_eq!(plan.differs_from(&work, &data).unwrap(), "it does not hold `extra.tf`, which is rendered now");
        assert!(PlanFile::read(b"not a zip").is_err());
    }

    /// A plan file holding two entries of one name (a forged `tfplan` first, which Terraform
    /// reads, and the honest one last, which the zip library keeps) is refused.
    #[test]
    fn a_plan_file_with_two_entries_of_one_name_is_refused() {
        // The zip writer refuses a second entry of a name: the second is renamed once written
        // (`tfplaN` to `tfplan`, in its local header and in the central directory).
        let written = plan_file(&[("tfplan", b"forged"), ("tfplaN", TFPLAN), ("tfstate", b"{}")]);
        let mut bytes = Vec::new();
        let mut rest = &written[..];
        while let Some(at) = rest.windows(6).position(|w| w == b"tfplaN") {
            bytes.extend_from_slice(&rest[..at]);
            bytes.extend_from_slice(b"tfplan");
            rest = &rest[at + 6..];
        }
        bytes.extend_from_slice(rest);
        assert_eq!(PlanFile::read(&bytes).unwrap_err(), "it holds two entries of one name");
        // Before the renaming, the archive is read (and its forged `tfplan` found wanting).
        assert!(PlanFile::read(&written).unwrap_err().starts_with("its backend cannot be read"));
    }
}
