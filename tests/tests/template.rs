//! The deployment template: `template.yaml` passes cfn-lint (PyPI, with the SAM transform) and
//! declares what customers and the emulator rely on.

use std::path::PathBuf;

use xstage_tests::clients;

fn template() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

#[test]
fn cfn_lint_finds_nothing() {
    let (code, output) = clients::cfn_lint(&template()).expect("cfn-lint");
    assert_eq!(code, 0, "cfn-lint reported:\n{output}");
    assert!(output.trim().is_empty(), "{output}");
}

#[test]
fn cfn_lint_would_catch_a_broken_template() {
    // The check above can fail: the same template with a deprecated runtime does not pass.
    let text = std::fs::read_to_string(template()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("template.yaml");
    std::fs::write(&broken, text.replace("provided.al2023", "nodejs4.3")).unwrap();
    let (code, output) = clients::cfn_lint(&broken).expect("cfn-lint");
    assert_ne!(code, 0, "{output}");
    assert!(output.contains("nodejs4.3"), "{output}");
}
