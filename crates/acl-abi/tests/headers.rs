//! The checked-in headers are the rendered ones; C and C++ compilers accept them; and they, the
//! Rust tables and the official CANN headers agree on every value, type and prototype.
//!
//! `ACL_ABI_BLESS=1 cargo test -p acl-abi --test headers` rewrites the checked-in headers (and,
//! when the CANN headers are at hand, the `official_*.h` fixtures) instead of comparing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use acl_abi::consts::{CONSTANTS, Kind};
use acl_abi::types::{ENUMS, TYPEDEFS};
use acl_abi::{FUNCTIONS, header};

const BLESS: &str = "ACL_ABI_BLESS=1 cargo test -p acl-abi --test headers";

fn blessing() -> bool {
    std::env::var_os("ACL_ABI_BLESS").is_some_and(|v| v == "1")
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where the headers are checked in: `-I crates/ascendcl-sim/include`.
fn include_dir() -> PathBuf {
    manifest_dir().join("../ascendcl-sim/include")
}

fn fixture(name: &str) -> PathBuf {
    manifest_dir().join("tests").join(name)
}

/// Says, past the test harness's capture, that a check did not run: a skip must never look like
/// a pass.
fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED (acl-abi): {why}");
}

/// Writes through a rename, so that a test reading `path` meanwhile sees the old or the new file.
fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Compares `text` with the file at `path`, or writes it when blessing.
fn check_or_bless(path: &Path, text: &str) -> Result<(), String> {
    if blessing() {
        write(path, text);
        return Ok(());
    }
    match std::fs::read_to_string(path) {
        Ok(old) if old == text => Ok(()),
        Ok(_) => Err(format!("{} is out of date", path.display())),
        Err(e) => Err(format!("{} cannot be read: {e}", path.display())),
    }
}

#[test]
fn checked_in_headers_are_current() {
    let stale: Vec<String> = header::render_all()
        .iter()
        .filter_map(|(path, text)| check_or_bless(&include_dir().join(path), text).err())
        .collect();
    assert!(
        stale.is_empty(),
        "the checked-in headers differ from what acl-abi renders:\n  {}\nrerun with `{BLESS}` \
         to regenerate them, and commit the result",
        stale.join("\n  ")
    );
}

/// The headers as rendered now, in a fresh include directory, so that compiling does not race
/// with a blessing run.
fn rendered_include_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in header::render_all() {
        write(&dir.join(path), &text);
    }
    write(&dir.join("acl_abi_checks.h"), &header::render_checks());
    dir
}

/// Compiles `source` (written to a file in `dir`) with `cc -std=c99` and `c++`, every warning an
/// error, syntax only; a missing compiler skips the rest, saying so.
fn compiles_as_c_and_cxx(dir: &Path, source: &str) {
    let file = dir.join("check.c");
    write(&file, source);
    let strict = ["-Wall", "-Wextra", "-Werror", "-fsyntax-only"];
    let runs: [(&str, &[&str]); 2] = [
        ("cc", &["-std=c99"]),
        ("c++", &["-x", "c++", "-std=c++11", "-pedantic"]),
    ];
    for (compiler, lang) in runs {
        let out = Command::new(compiler)
            .args(lang)
            .args(strict)
            .arg("-I")
            .arg(dir)
            .arg("-I")
            .arg(manifest_dir().join("tests"))
            .arg(&file)
            .output();
        let out = match out {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    std::env::var_os("ACL_ABI_REQUIRE_CC").is_none(),
                    "`{compiler}` not found and ACL_ABI_REQUIRE_CC is set"
                );
                skipped(&format!(
                    "`{compiler}` is not installed; the headers were not compiled"
                ));
                return;
            }
            Err(e) => panic!("running {compiler}: {e}"),
        };
        assert!(
            out.status.success(),
            "{compiler} {lang:?} rejects {}:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Our headers, then CANN's prototypes (a redeclaration with another type is an error), then the
/// tables' checks, then a few values read off the official headers by hand.
#[test]
fn headers_compile_and_match_the_official_prototypes() {
    let dir = rendered_include_dir("ours");
    compiles_as_c_and_cxx(
        &dir,
        "#include \"acl/acl.h\"\n\
         #include \"acl_notify.h\"\n\
         #ifdef __cplusplus\nextern \"C\" {\n#endif\n\
         #include \"official_prototypes.h\"\n\
         #ifdef __cplusplus\n}\n#endif\n\
         #include \"acl_abi_checks.h\"\n\
         ACL_ABI_CHECK(ACL_MEMCPY_DEVICE_TO_DEVICE == 3);\n\
         ACL_ABI_CHECK(ACL_RT_IPC_MEM_EXPORT_FLAG_DISABLE_PID_VALIDATION == 0x1);\n\
         ACL_ABI_CHECK(ACL_RT_IPC_MEM_IMPORT_FLAG_ENABLE_PEER_ACCESS == 0x1);\n\
         ACL_ABI_CHECK(ACL_RT_NOTIFY_EXPORT_FLAG_DISABLE_PID_VALIDATION == 0x2);\n\
         ACL_ABI_CHECK(ACL_RT_NOTIFY_IMPORT_FLAG_ENABLE_PEER_ACCESS == 0x2);\n\
         ACL_ABI_CHECK(ACL_EVENT_IPC == 0x40);\n\
         ACL_ABI_CHECK(ACL_ERROR_RT_DRV_INTERNAL_ERROR == 507899);\n",
    );
}

/// The tables' checks against the official lines alone: the Rust values and types are CANN's.
#[test]
fn tables_match_the_official_values() {
    let dir = rendered_include_dir("official");
    compiles_as_c_and_cxx(
        &dir,
        "#include <stddef.h>\n#include <stdint.h>\n\
         #define ACL_FUNC_VISIBILITY\n\
         #ifdef __cplusplus\nextern \"C\" {\n#endif\n\
         #include \"official_values.h\"\n\
         #include \"official_prototypes.h\"\n\
         #ifdef __cplusplus\n}\n#endif\n\
         #include \"acl_abi_checks.h\"\n",
    );
}

/// Where the official CANN headers are: `$ACL_ABI_CANN_INCLUDE`, else `/tmp/cann` (flat, or in
/// the installed `acl/` layout).
fn cann_header(name: &str) -> Option<String> {
    let root = std::env::var_os("ACL_ABI_CANN_INCLUDE").map_or("/tmp/cann".into(), PathBuf::from);
    ["", "acl", "acl/error_codes"]
        .iter()
        .find_map(|sub| std::fs::read_to_string(root.join(sub).join(name)).ok())
}

/// The single official declaration of `name` that `starts` selects, up to its `;` (or the whole
/// enum block), with trailing `//` comments and spaces removed.
fn extract(text: &str, name: &str, starts: impl Fn(&str) -> bool) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let found: Vec<usize> = (0..lines.len()).filter(|&i| starts(lines[i])).collect();
    assert_eq!(
        found.len(),
        1,
        "{name}: expected one declaration in the CANN headers, found {found:?}"
    );
    let first = found[0];
    let mut out = String::new();
    for line in &lines[first..] {
        let line = line.split("//").next().unwrap().trim_end();
        out.push_str(line);
        out.push('\n');
        let done = if lines[first].starts_with("typedef enum") {
            line.starts_with('}')
        } else {
            line.starts_with("#define") || line.ends_with(';')
        };
        if done {
            return out;
        }
    }
    panic!("{name}: declaration does not end");
}

const FIXTURE_NOTE: &str = "\
/* Lines of the official CANN 1.17 headers for the subset acl-abi describes, extracted by
 * crates/acl-abi/tests/headers.rs (ACL_ABI_BLESS=1 with the CANN headers in /tmp/cann). */
";

/// The fixtures, extracted afresh from the CANN headers.
fn extract_fixtures(base_rt: &str, rt: &str, codes: &str) -> (String, String) {
    let mut prototypes = FIXTURE_NOTE.to_owned();
    for f in FUNCTIONS {
        prototypes.push_str(&extract(rt, f.name, |l| {
            l.starts_with("ACL_FUNC_VISIBILITY ")
                && (l.contains(&format!(" {}(", f.name)) || l.contains(&format!("*{}(", f.name)))
        }));
    }

    let mut values = FIXTURE_NOTE.to_owned();
    for t in TYPEDEFS {
        let text = if t.header == header::ACL_BASE_RT_H {
            base_rt
        } else {
            rt
        };
        values.push_str(&extract(text, t.name, |l| {
            l.starts_with("typedef ")
                && (l.ends_with(&format!(" {};", t.name))
                    || l.ends_with(&format!("*{};", t.name))
                    || l.contains(&format!("(*{})", t.name)))
        }));
    }
    for k in CONSTANTS {
        let (text, start) = match k.kind {
            Kind::StaticConstInt => (base_rt, format!("static const int {} =", k.name)),
            Kind::Define if k.header == header::RT_ERROR_CODES_H => {
                (codes, format!("#define {} ", k.name))
            }
            Kind::Define => (rt, format!("#define {} ", k.name)),
            Kind::EnumVariant(_) => continue,
        };
        values.push_str(&extract(text, k.name, |l| l.starts_with(&start)));
    }
    for e in ENUMS {
        values.push_str(&extract(rt, e, |l| l == format!("typedef enum {e} {{")));
    }
    (prototypes, values)
}

/// The fixtures hold what the CANN headers say, when those are at hand to compare with.
#[test]
fn fixtures_are_the_official_lines() {
    let (Some(base_rt), Some(rt), Some(codes)) = (
        cann_header("acl_base_rt.h"),
        cann_header("acl_rt.h"),
        cann_header("rt_error_codes.h"),
    ) else {
        skipped(
            "the CANN headers are not in /tmp/cann (or $ACL_ABI_CANN_INCLUDE); the committed \
             tests/official_*.h fixtures were not re-extracted",
        );
        return;
    };
    let (prototypes, values) = extract_fixtures(&base_rt, &rt, &codes);
    let stale: Vec<String> = [
        ("official_prototypes.h", prototypes),
        ("official_values.h", values),
    ]
    .iter()
    .filter_map(|(name, text)| check_or_bless(&fixture(name), text).err())
    .collect();
    assert!(
        stale.is_empty(),
        "the fixtures differ from the CANN headers:\n  {}\nrerun with `{BLESS}` to re-extract them",
        stale.join("\n  ")
    );
}
