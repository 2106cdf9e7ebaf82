//! A spec's `name` becomes part of folder names: a name that would reach outside the output
//! folder, or hide in it, is refused naming the file and the key `name`.

use crate::common::{run_cli, temp_file};
use crate::spec_errors::error_for;

const NAMES: [&str; 8] = [
    "../../escaped",
    "/tmp/absolute",
    "a/b",
    "x/../../../F",
    "..",
    ".hidden",
    "back\\\\slash",
    "",
];

#[test]
fn names_that_would_leave_the_output_folder_are_refused() {
    for kind in ["model", "fabric"] {
        let line = if kind == "model" {
            "name = \"gpt-tiny\""
        } else {
            "name = \"mini\""
        };
        for name in NAMES {
            let err = error_for(kind, |t| t.replace(line, &format!("name = \"{name}\"")));
            assert!(
                err.contains("key `name`") && err.contains("not starting with '.'"),
                "{kind} {name:?}: {err}"
            );
        }
        let long = "n".repeat(65);
        let err = error_for(kind, |t| t.replace(line, &format!("name = \"{long}\"")));
        assert!(err.contains("1 to 64"), "{err}");
    }
}

/// train refuses such a fabric before it creates any folder.
#[test]
fn train_refuses_an_escaping_fabric_name_before_writing() {
    let fabric = include_str!("../../fabric/mini.toml")
        .replace("name = \"mini\"", "name = \"x/../../../FABESC\"");
    let path = temp_file("escaping-fabric.toml", &fabric);
    let out = std::env::temp_dir().join(format!("wafersim-names-{}", std::process::id()));
    let (code, _, err) = run_cli(&[
        "train",
        "gpt-tiny",
        "--fabric",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("escaping-fabric.toml") && err.contains("key `name`"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written");
}
