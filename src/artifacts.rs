//! Writes the generated rule, rule-test and dashboard files. Each file is written to a
//! temporary name and renamed, so Prometheus or Grafana never read a half-written file.

use std::io;
use std::path::{Path, PathBuf};

use crate::generate::{dashboards, rule_tests, rules};
use crate::thresholds::Thresholds;

/// Rule file name inside the rules directory.
pub const RULE_FILE: &str = "redline.rules.yml";
/// promtool test file name inside the rules directory.
pub const RULE_TEST_FILE: &str = "redline.rules.test.yml";

/// The rule file and its promtool tests under `dir`.
pub fn render_rules(t: &Thresholds, dir: &Path) -> Vec<(PathBuf, String)> {
    vec![
        (dir.join(RULE_FILE), rules::rule_file(t)),
        (dir.join(RULE_TEST_FILE), rule_tests::test_file(t, RULE_FILE)),
    ]
}

/// The dashboards under `dir`.
pub fn render_dashboards(t: &Thresholds, dir: &Path) -> Vec<(PathBuf, String)> {
    dashboards::dashboards(t).into_iter().map(|(name, text)| (dir.join(name), text)).collect()
}

/// Every generated file as `(path, contents)`.
pub fn render(t: &Thresholds, rules_dir: &Path, dashboards_dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = render_rules(t, rules_dir);
    out.extend(render_dashboards(t, dashboards_dir));
    out
}

/// Where `redline generate` puts each kind of output.
pub struct Outputs<'a> {
    /// Rules and rule tests.
    pub rules_dir: &'a Path,
    /// Dashboards.
    pub dashboards_dir: &'a Path,
    /// Runbook document.
    pub runbooks: &'a Path,
    /// PrometheusRule and thresholds ConfigMap.
    pub kubernetes_dir: &'a Path,
    /// Namespace of the Kubernetes resources.
    pub namespace: &'a str,
}

/// Everything `redline generate` writes; `thresholds_text` is the file as written (for the ConfigMap).
pub fn render_everything(t: &Thresholds, thresholds_text: &str, o: &Outputs) -> Vec<(PathBuf, String)> {
    let mut files = render(t, o.rules_dir, o.dashboards_dir);
    files.push((o.runbooks.to_path_buf(), crate::generate::runbooks::runbooks(t)));
    files.push((
        o.kubernetes_dir.join("prometheusrule.yaml"),
        rules::prometheus_rule(t, "redline", Some(o.namespace)),
    ));
    files.push((
        o.kubernetes_dir.join("thresholds-configmap.yaml"),
        rules::thresholds_configmap(thresholds_text, "redline-thresholds", Some(o.namespace)),
    ));
    files
}

/// Writes `contents` to `path` atomically, creating the directory; unchanged files are left alone.
pub fn write_atomic(path: &Path, contents: &str) -> io::Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

/// Renders and writes everything; returns the files that changed.
pub fn write_all(t: &Thresholds, rules_dir: &Path, dashboards_dir: &Path) -> io::Result<Vec<PathBuf>> {
    write(render(t, rules_dir, dashboards_dir))
}

/// Writes rendered files; returns the ones that changed.
pub fn write(files: Vec<(PathBuf, String)>) -> io::Result<Vec<PathBuf>> {
    let mut changed = Vec::new();
    for (path, text) in files {
        if write_atomic(&path, &text)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?
        {
            changed.push(path);
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_then_leaves_unchanged_files_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Thresholds::defaults();
        let first = write_all(&t, &dir.path().join("rules"), &dir.path().join("grafana")).expect("write");
        assert_eq!(first.len(), 2 + crate::catalog::Area::ALL.len() + 1);
        let again = write_all(&t, &dir.path().join("rules"), &dir.path().join("grafana")).expect("write");
        assert!(again.is_empty());
    }
}
