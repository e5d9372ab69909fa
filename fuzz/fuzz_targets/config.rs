//! Config loading from arbitrary YAML text: never panics (problems are
//! reported as values).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `api_key_file` reads a file: keep the fuzzer off the filesystem.
    if text.contains("_file") {
        return;
    }
    let env = |name: &str| (name == "FUZZ_SET").then(|| "1".to_owned());
    let _ = switchyard_server::config::from_yaml(text, "fuzz.yaml", &env);
});
