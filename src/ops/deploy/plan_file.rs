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
    /// Each module of the configuration, by its key (`""` for the root, `db`, `db.inner`): the
    /// folder Terraform read it from, and its files by name.
    pub modules: BTreeMap<String, (String, BTreeMap<String, Vec<u8>>)>,
}

impl PlanFile {
    /// Reads the plan file `bytes`.
    pub fn read(bytes: &[u8]) -> Result<Self, String> {
        let mut archive =
            zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("not a Terraform plan file: {e}"))?;
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
            modules,
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

    fn plan_file(files: &[(&str, &str)]) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        for (name, text) in files {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut zip, text.as_bytes()).unwrap();
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
                ("tfstate", r#"{"lineage": "l-1", "serial": 7, "resources": [{}, {}]}"#),
                ("tfconfig/modules.json", modules),
                ("tfconfig/m-/main.tf", root),
                ("tfconfig/m-db/main.tf", "b"),
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
}
