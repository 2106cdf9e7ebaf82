//! Helpers shared by the integration tests.

/// Runs the command line in-process (program name added) and returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (u8, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("wafersim").chain(args.iter().copied());
    let code = wafersim::cli::run(argv, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).expect("stdout is UTF-8"),
        String::from_utf8(err).expect("stderr is UTF-8"),
    )
}

/// Runs the command line and parses its stdout as JSON; panics with stderr if it failed.
pub fn run_json(args: &[&str]) -> serde_json::Value {
    let mut argv = args.to_vec();
    argv.push("--json");
    let (code, out, err) = run_cli(&argv);
    assert_eq!(code, 0, "wafersim {args:?} failed: {err}");
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{out}"))
}

/// Writes `text` to a fresh file in a temporary folder and returns its path.
pub fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wafersim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary folder");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temporary file");
    path
}

/// Compares `actual` with the golden file `traces/golden/NAME`. With `WAFERSIM_BLESS=1` it
/// writes `actual` there instead (review the diff with `git diff traces/golden` and explain it in
/// the commit); any other value of `WAFERSIM_BLESS` is refused, so a stray `WAFERSIM_BLESS=0`
/// cannot turn every golden check into a pass. A mismatch names the first lines that differ.
pub fn assert_golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("traces/golden")
        .join(name);
    if bless_requested() {
        std::fs::write(&path, actual).expect("golden file written");
        return;
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("golden file traces/golden/{name}: {e}; bless it with WAFERSIM_BLESS=1")
    });
    if golden == actual {
        return;
    }
    let differing: Vec<String> = golden
        .lines()
        .zip(actual.lines())
        .enumerate()
        .filter(|(_, (g, a))| g != a)
        .take(12)
        .map(|(i, (g, a))| format!("line {}:\n  golden: {g}\n  now:    {a}", i + 1))
        .collect();
    panic!(
        "traces/golden/{name} differs ({} lines golden, {} now):\n{}\nIf the change is intended, \
         rerun with WAFERSIM_BLESS=1, review `git diff traces/golden` and explain it in the commit",
        golden.lines().count(),
        actual.lines().count(),
        differing.join("\n")
    );
}

/// Whether to rewrite golden files: `WAFERSIM_BLESS` exactly `1` blesses, unset compares, and
/// any other value (`0`, `true`, empty) fails, so that no setting passes a test by rewriting
/// its golden file unasked.
pub fn bless_requested() -> bool {
    bless_mode(std::env::var_os("WAFERSIM_BLESS").as_deref()).unwrap_or_else(|e| panic!("{e}"))
}

/// What a value of `WAFERSIM_BLESS` asks for: `Ok(true)` bless, `Ok(false)` compare.
pub fn bless_mode(value: Option<&std::ffi::OsStr>) -> Result<bool, String> {
    match value {
        None => Ok(false),
        Some(v) if v == "1" => Ok(true),
        Some(v) => Err(format!(
            "WAFERSIM_BLESS={v:?}: set it to 1 to rewrite the golden files, or unset it to compare"
        )),
    }
}

/// Runs `sweep SPEC --out OUT --quiet`: (exit code, stdout, stderr).
pub fn run_sweep(spec: &std::path::Path, out: &std::path::Path) -> (u8, String, String) {
    run_cli(&[
        "sweep",
        spec.to_str().expect("a UTF-8 path"),
        "--out",
        out.to_str().expect("a UTF-8 path"),
        "--quiet",
    ])
}

/// Every (collective, algorithm) pair the engine runs.
pub const COLLECTIVES: [(
    wafersim::engine::kernels::collective::Collective,
    wafersim::engine::kernels::collective::Algo,
); 6] = {
    use wafersim::engine::kernels::collective::{Algo, Collective};
    [
        (Collective::Reduce, Algo::Chain),
        (Collective::Reduce, Algo::Tree),
        (Collective::Allreduce, Algo::Chain),
        (Collective::Allreduce, Algo::Tree),
        (Collective::Allreduce, Algo::Ring),
        (Collective::Broadcast, Algo::Chain),
    ]
};

/// `f` over `items` on two threads (the machines that run the tests have two cores or more),
/// results in the items' order.
pub fn on_two_threads<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> Vec<R> + Sync) -> Vec<R> {
    let f = &f;
    std::thread::scope(|scope| {
        let halves: Vec<_> = items
            .chunks(items.len().div_ceil(2).max(1))
            .map(|chunk| scope.spawn(move || chunk.iter().flat_map(f).collect::<Vec<R>>()))
            .collect();
        halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// The exact integer a report keeps beside a FLOP count, `<key>_exact` (a decimal string; the
/// number under `key` is its nearest double).
pub fn exact(json: &serde_json::Value, key: &str) -> u128 {
    let text = json[format!("{key}_exact")]
        .as_str()
        .unwrap_or_else(|| panic!("no {key}_exact string in {json}"));
    let exact: u128 = text.parse().unwrap();
    assert_eq!(
        json[key].as_f64(),
        Some(exact as f64),
        "{key} is {key}_exact rounded"
    );
    exact
}

/// Every text element of an SVG picture, trimmed, in document order.
pub fn svg_texts(path: &std::path::Path) -> Vec<String> {
    let svg = std::fs::read_to_string(path).expect("the SVG was written");
    let document = roxmltree::Document::parse(&svg).expect("the SVG parses as XML");
    document
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect()
}
