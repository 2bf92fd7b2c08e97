//! What a Terraform plan file (`plan -out`, a zip archive) holds that ties it to one account:
//! the state it was made against (`tfstate`) and the configuration Terraform will apply
//! (`tfconfig/`). `terraform apply PLANFILE` writes to the backend and applies the
//! configuration the plan file holds, whatever folder it runs in: a saved plan is taken for an
//! account's only when these are the account's own, never by what the file around it says.

use std::collections::BTreeMap;
use std::io::Read as _;

use crate::render::tree::Tree;

/// The most of a plan file's state and configuration Stamp reads.
const MAX_READ: u64 = 256 << 20;

/// The state and configuration a plan file was made from.
#[derive(Debug)]
pub struct PlanFile {
    /// The prior state's lineage and serial.
    pub lineage: String,
    pub serial: u64,
    /// How many resources the prior state holds.
    pub resources: usize,
    /// Each module of the configuration that Stamp's tree holds (not one `init` downloaded):
    /// its folder in the tree (`""` for the root) and its files, by name.
    pub modules: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
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
        let modules: Vec<ModuleRecord> = serde_json::from_slice(&entry("tfconfig/modules.json")?)
            .map_err(|e| format!("its module list is not JSON: {e}"))?;
        let mut folders = BTreeMap::new();
        for module in modules {
            let Some(dir) = tree_folder(&module.dir) else { continue };
            let prefix = format!("tfconfig/m-{}/", module.key);
            let names: Vec<String> = all
                .iter()
                .filter_map(|n| n.strip_prefix(&prefix))
                .filter(|n| !n.is_empty() && !n.contains('/'))
                .map(str::to_string)
                .collect();
            let mut files = BTreeMap::new();
            for name in names {
                files.insert(name.clone(), entry(&format!("{prefix}{name}"))?);
            }
            folders.insert(dir, files);
        }
        Ok(Self {
            lineage: state.get("lineage").and_then(serde_json::Value::as_str).unwrap_or_default().to_string(),
            serial: state.get("serial").and_then(serde_json::Value::as_u64).unwrap_or_default(),
            resources: state.get("resources").and_then(serde_json::Value::as_array).map_or(0, Vec::len),
            modules: folders,
        })
    }

    /// Why the configuration this plan applies is not `tree`'s, if it is not: a file of a module
    /// that differs from the tree's, or a Terraform file of the tree the plan does not hold.
    pub fn differs_from(&self, tree: &Tree) -> Option<String> {
        if !self.modules.contains_key("") {
            return Some("it holds no root module".into());
        }
        for (dir, files) in &self.modules {
            let path = |name: &str| if dir.is_empty() { name.to_string() } else { format!("{dir}/{name}") };
            for (name, bytes) in files {
                match tree.files.get(&path(name)) {
                    Some(file) if *file.content == **bytes => {}
                    Some(_) => return Some(format!("its `{}` is not the one rendered now", path(name))),
                    None => return Some(format!("it holds `{}`, which is not rendered now", path(name))),
                }
            }
            let prefix = if dir.is_empty() { String::new() } else { format!("{dir}/") };
            let missing = tree.files.keys().filter_map(|p| p.strip_prefix(&prefix)).find(|name| {
                !name.contains('/')
                    && (name.ends_with(".tf") || name.ends_with(".tf.json"))
                    && !files.contains_key(*name)
            });
            if let Some(name) = missing {
                return Some(format!("it does not hold `{}`, which is rendered now", path(name)));
            }
        }
        None
    }
}

#[derive(serde::Deserialize)]
struct ModuleRecord {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Dir")]
    dir: String,
}

/// A module's folder (`.`, `modules/db`) as a path of the tree (`""`, `modules/db`); `None`
/// for one that is not in the tree (a module `init` downloaded into `.terraform/`) or that
/// leads out of it.
fn tree_folder(dir: &str) -> Option<String> {
    let mut parts = Vec::new();
    for part in dir.split(['/', '\\']) {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    if parts.first() == Some(&".terraform") {
        return None;
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tree::TreeFile;

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

    fn tree(files: &[(&str, &str)]) -> Tree {
        Tree {
            files: files
                .iter()
                .map(|(p, t)| ((*p).to_string(), TreeFile { content: t.as_bytes().to_vec().into(), executable: false }))
                .collect(),
        }
    }

    #[test]
    fn a_plan_is_the_trees_only_with_its_configuration() {
        let bytes = plan_file(&[
            ("tfstate", r#"{"lineage": "l-1", "serial": 7, "resources": [{}, {}]}"#),
            (
                "tfconfig/modules.json",
                r#"[{"Key": "", "Dir": "."}, {"Key": "db", "Dir": "modules/db"}, {"Key": "vpc", "Dir": ".terraform/modules/vpc"}]"#,
            ),
            ("tfconfig/m-/main.tf", "a"),
            ("tfconfig/m-db/main.tf", "b"),
            ("tfconfig/m-vpc/main.tf", "downloaded"),
        ]);
        let plan = PlanFile::read(&bytes).unwrap();
        assert_eq!((plan.lineage.as_str(), plan.serial, plan.resources), ("l-1", 7, 2));
        let same = tree(&[("main.tf", "a"), ("modules/db/main.tf", "b"), ("scripts/x.sh", "s")]);
        assert_eq!(plan.differs_from(&same), None);
        let edited = tree(&[("main.tf", "a"), ("modules/db/main.tf", "c")]);
        assert_eq!(plan.differs_from(&edited).unwrap(), "its `modules/db/main.tf` is not the one rendered now");
        let more = tree(&[("main.tf", "a"), ("extra.tf", "x"), ("modules/db/main.tf", "b")]);
        assert_eq!(plan.differs_from(&more).unwrap(), "it does not hold `extra.tf`, which is rendered now");
        let fewer = tree(&[("modules/db/main.tf", "b")]);
        assert_eq!(plan.differs_from(&fewer).unwrap(), "it holds `main.tf`, which is not rendered now");
        assert!(PlanFile::read(b"not a zip").is_err());
    }
}
