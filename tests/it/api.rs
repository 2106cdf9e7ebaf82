//! `wafersim::api`, the entry point of the Python module: the same report as the command line
//! for the same words, no file written where the command writes none, specs given as text
//! equal to the same specs read from files, and refusals with the command's message.

use wafersim::api::{parse, run, InlineSpec, Output, Specs};

use crate::common::{run_cli, temp_file};

fn api_json(args: &[&str], specs: &Specs) -> String {
    let argv = std::iter::once("wafersim").chain(args.iter().copied());
    let args = parse(argv).expect("the words parse");
    run(&args, specs)
        .expect("the command runs")
        .json()
        .to_string()
}

fn parsed(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("a JSON document")
}

/// The JSON document without the host's timing, which differs between any two runs.
fn without_host(mut value: serde_json::Value) -> serde_json::Value {
    if let Some(object) = value.as_object_mut() {
        object.retain(|key, _| key != "host_seconds" && !key.ends_with("_per_host_second"));
    }
    value
}

#[test]
fn train_returns_report_json_byte_for_byte_and_writes_nothing() {
    let out = std::env::temp_dir().join(format!("wafersim-api-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let words = [
        "train",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--sparsity",
        "0.5,0.75",
    ];
    let out_text = out.to_str().expect("UTF-8 path");
    let (code, _, err) = run_cli(&[&words[..], &["--out", out_text, "--quiet"]].concat());
    assert_eq!(code, 0, "{err}");
    let written = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    let before: Vec<_> = std::fs::read_dir(".")
        .expect("cwd")
        .map(|e| e.ok())
        .collect();

    let args = parse(std::iter::once("wafersim").chain(words)).expect("parses");
    let Output::Train(trained) = run(&args, &Specs::default()).expect("runs") else {
        panic!("train gives a train output")
    };
    assert_eq!(trained.report_json, written);
    let phases = std::fs::read_to_string(out.join("phases.csv")).expect("phases.csv");
    assert_eq!(trained.phases_csv().expect("phases"), phases);
    let ops = std::fs::read_to_string(out.join("ops.csv")).expect("ops.csv");
    assert_eq!(trained.ops_csv().expect("ops"), ops);
    let npz = std::fs::read(out.join("counters.npz")).expect("counters.npz");
    assert_eq!(trained.counters_npz().expect("counters"), npz);
    let after: Vec<_> = std::fs::read_dir(".")
        .expect("cwd")
        .map(|e| e.ok())
        .collect();
    assert_eq!(
        before.len(),
        after.len(),
        "train without --out wrote into the folder"
    );
    std::fs::remove_dir_all(&out).expect("clean up");
}

#[test]
fn train_with_out_writes_the_commands_files() {
    let out = std::env::temp_dir().join(format!("wafersim-api-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let out_text = out.to_str().expect("UTF-8 path");
    let words = [
        "wafersim", "train", "gpt-tiny", "--fabric", "mini", "--out", out_text,
    ];
    let output = run(&parse(words).expect("parses"), &Specs::default()).expect("runs");
    let written = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    assert_eq!(output.json(), written);
    for file in [
        "phases.csv",
        "ops.csv",
        "counters.npz",
        "trace.json",
        "speedup.png",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    std::fs::remove_dir_all(&out).expect("clean up");
}

#[test]
fn step_flops_kernel_validate_match_the_command_line() {
    let cases: [&[&str]; 5] = [
        &["step", "gpt-tiny", "--fabric", "mini", "--sparsity", "0.5"],
        &["flops", "gpt-tiny", "--sparsity", "0.5,0.75"],
        &[
            "kernel", "gemm", "--t", "64", "--k", "32", "--n", "32", "--region", "4x4",
        ],
        &["validate"],
        &["validate", "--hardware"],
    ];
    for words in cases {
        let (code, cli, err) = run_cli(&[words, &["--json"]].concat());
        assert_eq!(code, 0, "{words:?}: {err}");
        let api = api_json(words, &Specs::default());
        assert_eq!(
            without_host(parsed(&api)),
            without_host(parsed(&cli)),
            "{words:?}"
        );
    }
}

#[test]
fn a_spec_given_as_json_equals_the_same_spec_read_from_its_file() {
    let text = wafersim::spec::read_model("gpt-tiny")
        .expect("built in")
        .text;
    let table: toml::Table = toml::from_str(&text).expect("TOML");
    let json = serde_json::to_string(&table).expect("JSON");
    let path = temp_file("api-gpt-tiny.toml", &text);
    let path = path.to_str().expect("UTF-8 path");
    let specs = Specs {
        model: Some(InlineSpec::from_json("<model dict>", &json).expect("a spec")),
        fabric: None,
    };
    let from_file = parsed(&api_json(
        &["step", path, "--fabric", "mini"],
        &Specs::default(),
    ));
    let inline = parsed(&api_json(
        &["step", "<model dict>", "--fabric", "mini"],
        &specs,
    ));
    assert_eq!(inline["model_source"], "<model dict>");
    assert_eq!(inline["cycles"], from_file["cycles"]);
    let drop_sources = |mut v: serde_json::Value| {
        let object = v.as_object_mut().expect("an object");
        for key in ["model_source", "model_sha256", "host_seconds"] {
            object.remove(key);
        }
        v
    };
    assert_eq!(drop_sources(inline), drop_sources(from_file));
}

#[test]
fn refusals_carry_the_command_lines_message() {
    let words = ["step", "gpt-tiny", "--fabric", "nope"];
    let (code, _, err) = run_cli(&words);
    assert_eq!(code, 2);
    let args = parse(std::iter::once("wafersim").chain(words)).expect("parses");
    let Err(error) = run(&args, &Specs::default()) else {
        panic!("refused")
    };
    assert!(matches!(error, wafersim::Error::Input(_)));
    assert_eq!(format!("wafersim: error: {error}\n"), err);

    // A flag the parser refuses: its first paragraph, without clap's "error: ".
    let words = ["wafersim", "step", "--sparsity", "1.5"];
    let Err(error) = parse(words) else {
        panic!("refused")
    };
    let (code, _, err) = run_cli(&words[1..]);
    assert_eq!(code, 2);
    let first = err.split("\n\n").next().expect("a paragraph");
    assert_eq!(format!("error: {error}"), first.trim_end());

    // A value TOML cannot hold, named by the spec's origin.
    let error =
        InlineSpec::from_json("<model dict>", r#"{"architecture": null}"#).expect_err("refused");
    assert!(
        error.to_string().starts_with("<model dict>: not a spec"),
        "{error}"
    );
    let kernel = parse([
        "wafersim",
        "kernel",
        "reduce",
        "--pes",
        "4",
        "--wavelets",
        "2",
    ]);
    let fabric = Some(InlineSpec::from_json("<fabric dict>", "{}").expect("a table"));
    let refused = run(
        &kernel.expect("parses"),
        &Specs {
            model: None,
            fabric,
        },
    );
    assert!(matches!(refused, Err(wafersim::Error::Input(m)) if m.contains("by built-in name")));
}
