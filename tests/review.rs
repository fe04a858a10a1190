//! `aidiag check --diff` and `--patch` on git repositories built in a temporary directory.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::json;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "A U Thor")
        .env("GIT_AUTHOR_EMAIL", "author@example.org")
        .env("GIT_COMMITTER_NAME", "A U Thor")
        .env("GIT_COMMITTER_EMAIL", "author@example.org")
        .env("GIT_AUTHOR_DATE", "2026-11-30T12:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-11-30T12:00:00Z")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn aidiag(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aidiag"))
        .arg("check")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const LOCKED: &str = "int set(struct foo *foo, int v)\n{\n\tmutex_lock(&foo->lock);\n\tif (v < 0) {\n\t\tmutex_unlock(&foo->lock);\n\t\treturn -EINVAL;\n\t}\n\tfoo->v = v;\n\tmutex_unlock(&foo->lock);\n\treturn 0;\n}\n";
const LEAKY: &str = "int probe(int x)\n{\n\tchar *buf = kmalloc(16, GFP_KERNEL);\n\n\tif (!buf)\n\t\treturn -ENOMEM;\n\tif (x)\n\t\treturn -EIO;\n\tkfree(buf);\n\treturn 0;\n}\n";
const OTHER: &str = "static int other(int x)\n{\n\treturn x + 1;\n}\n";

fn unlock_missing() -> String {
    LOCKED.replace(
        "\tfoo->v = v;\n",
        "\tif (v > 100)\n\t\treturn -ERANGE;\n\tfoo->v = v;\n",
    )
}

fn leak_fixed() -> String {
    LEAKY.replace(
        "\tif (x)\n\t\treturn -EIO;\n",
        "\tif (x) {\n\t\tkfree(buf);\n\t\treturn -EIO;\n\t}\n",
    )
}

/// A repository whose first commit holds drv.c (LOCKED, LEAKY, OTHER).
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "--quiet", "-b", "main"]);
    std::fs::write(
        dir.path().join("drv.c"),
        format!("{LOCKED}\n{LEAKY}\n{OTHER}"),
    )
    .unwrap();
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["commit", "--quiet", "-m", "drv: first"]);
    dir
}

fn commit(dir: &Path, text: &str, message: &str) {
    std::fs::write(dir.join("drv.c"), text).unwrap();
    git(dir, &["commit", "--quiet", "-am", message]);
}

#[test]
fn diff_reports_what_a_change_introduces_and_counts_what_it_fixes() {
    let repo = repository();
    let dir = repo.path();
    // Moved and re-indented: nothing touched.
    commit(
        dir,
        &format!("{OTHER}\n{}\n{LOCKED}\n", LEAKY.replace('\t', "        ")),
        "move",
    );
    let (code, stdout, stderr) = aidiag(dir, &["--diff", "HEAD~1", "--to", "HEAD"]);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    assert!(stderr.contains("0 functions touched"), "{stderr}");
    // A renamed variable: touched, nothing new.
    commit(
        dir,
        &format!("{OTHER}\n{}\n{LOCKED}\n", LEAKY.replace("buf", "data")),
        "rename",
    );
    let (code, stdout, stderr) = aidiag(dir, &["--diff", "HEAD~1", "--to", "HEAD"]);
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    assert!(
        stderr.contains("1 functions touched in 1 files: 0 findings introduced, 0 fixed"),
        "{stderr}"
    );
    // An error path without the unlock, in the working tree: reported, exit 1.
    std::fs::write(
        dir.join("drv.c"),
        format!(
            "{OTHER}\n{}\n{}\n",
            LEAKY.replace("buf", "data"),
            unlock_missing()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = aidiag(dir, &["--diff", "HEAD"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(stdout.matches("[lock-imbalance]").count(), 1, "{stdout}");
    assert!(
        !stdout.contains("leak-on-error"),
        "the leak was there before: {stdout}"
    );
    // The leak fixed: fixed 1, nothing new, exit 0; JSON lists no finding.
    std::fs::write(
        dir.join("drv.c"),
        format!(
            "{OTHER}\n{}\n{LOCKED}\n",
            leak_fixed().replace("buf", "data")
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = aidiag(dir, &["--diff", "HEAD", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["files"][0]["findings"].as_array().unwrap().len(), 0);
    assert!(
        stderr.contains("0 findings introduced, 1 fixed"),
        "{stderr}"
    );
    assert!(stderr.contains("aidiag: fixed: drv.c:"), "{stderr}");
}

/// A three-patch series: patch 2 adds a leak, patch 3 fixes it; written by git format-patch.
fn series(dir: &Path) -> String {
    git(dir, &["checkout", "--quiet", "-b", "work"]);
    commit(
        dir,
        &format!("{LOCKED}\n{LEAKY}\n{OTHER}\nint added(void)\n{{\n\treturn 0;\n}}\n"),
        "drv: add added()",
    );
    let two = LEAKY.replace(
        "\tkfree(buf);\n",
        "\tif (x > 3)\n\t\treturn -E2BIG;\n\tkfree(buf);\n",
    );
    commit(
        dir,
        &format!("{LOCKED}\n{two}\n{OTHER}\nint added(void)\n{{\n\treturn 0;\n}}\n"),
        "drv: reject big x",
    );
    let three = two.replace(
        "\tif (x > 3)\n\t\treturn -E2BIG;\n",
        "\tif (x > 3) {\n\t\tkfree(buf);\n\t\treturn -E2BIG;\n\t}\n",
    );
    commit(
        dir,
        &format!("{LOCKED}\n{three}\n{OTHER}\nint added(void)\n{{\n\treturn 0;\n}}\n"),
        "drv: free buf on big x",
    );
    let series = git(dir, &["format-patch", "--stdout", "main"]);
    git(dir, &["checkout", "--quiet", "main"]);
    series
}

#[test]
fn a_series_is_checked_patch_by_patch() {
    let repo = repository();
    let dir = repo.path();
    let series = series(dir);
    std::fs::write(dir.join("../series.mbox"), &series).unwrap();
    let mbox = dir.join("../series.mbox");
    let (code, stdout, stderr) = aidiag(dir, &["--patch", mbox.to_str().unwrap()]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains("patch 1/3: [PATCH 1/3] drv: add added()\npatch 2/3"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("[leak-on-error]").count(), 1, "{stdout}");
    assert!(
        stdout.contains("patch 2/3: [PATCH 2/3] drv: reject big x\n")
            && stdout.find("[leak-on-error]") < stdout.find("patch 3/3"),
        "{stdout}"
    );
    assert!(stderr.contains("patch 3/3 ([PATCH 3/3] drv: free buf on big x): aidiag: 1 functions touched in 1 files: 0 findings introduced, 1 fixed"), "{stderr}");
    // The working tree is untouched.
    assert_eq!(git(dir, &["status", "--porcelain"]), "");
    assert_eq!(git(dir, &["worktree", "list"]).lines().count(), 1);
}

#[test]
fn a_patch_that_does_not_apply_is_an_error_for_that_patch_only() {
    let repo = repository();
    let dir = repo.path();
    let series = series(dir);
    // HEAD moves on under patch 1's context (the end of other()); patches 2 and 3 still apply.
    commit(
        dir,
        &format!("{LOCKED}\n{LEAKY}\n{}", OTHER.replace("x + 1", "x + 2")),
        "drv: other changes",
    );
    let (code, stdout, stderr) = {
        let file = dir.join("../broken.mbox");
        std::fs::write(&file, series).unwrap();
        aidiag(dir, &["--patch", file.to_str().unwrap()])
    };
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stdout.contains("patch 1/3: [PATCH 1/3] drv: add added()\nerror: does not apply"),
        "{stdout}"
    );
    assert!(
        stderr.contains("patch 1/3 ([PATCH 1/3] drv: add added()): error: does not apply"),
        "{stderr}"
    );
    assert!(
        stderr.contains("patch 3/3"),
        "the rest is still checked: {stderr}"
    );
}

#[test]
fn the_reply_quotes_the_diff_and_puts_each_finding_under_its_line() {
    let repo = repository();
    let dir = repo.path();
    let series = series(dir);
    let file = dir.join("../reply.mbox");
    std::fs::write(&file, series).unwrap();
    let (code, stdout, stderr) = aidiag(
        dir,
        &["--patch", file.to_str().unwrap(), "--format", "reply"],
    );
    assert_eq!(code, 1, "{stderr}");
    let expected = "\
> diff --git a/drv.c b/drv.c
> index 5a2a0e4..0b9e2a6 100644
> --- a/drv.c
> +++ b/drv.c
> @@ -18,6 +18,8 @@ int probe(int x)
>  \t\treturn -ENOMEM;
>  \tif (x)
>  \t\treturn -EIO;
> +\tif (x > 3)
> +\t\treturn -E2BIG;

aidiag: warning: `buf` allocated at line 15 is not freed on the error return at line 22 [leak-on-error]

>  \tkfree(buf);
>  \treturn 0;
>  }
";
    // The index line carries blob ids, which depend on the file; compare the rest exactly.
    let mut got: Vec<&str> = stdout.lines().collect();
    let mut want: Vec<&str> = expected.lines().collect();
    assert!(got.len() > 1 && got[1].starts_with("> index "), "{stdout}");
    got.remove(1);
    want.remove(1);
    assert_eq!(got, want, "{stdout}");
}

#[test]
fn the_editor_baseline_shows_what_head_already_had_as_hints() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "--quiet", "-b", "main"]);
    std::fs::write(repo.join("drv.c"), LEAKY).unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "--quiet", "-m", "drv: first"]);
    // The edit adds a second function with the same bug; the first one's is old.
    let text = format!("{LEAKY}\n{}", LEAKY.replace("probe", "probe_again"));
    let uri = format!("file://{}", repo.join("drv.c").display());
    for (baseline, severities) in [("HEAD", vec![4, 2]), ("none", vec![2, 2])] {
        let mut client = common::Client::start();
        client.initialize_with(
            &["utf-16"],
            json!({"useModel": false, "baseline": baseline}),
        );
        client.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "c", "version": 1, "text": text}}),
        );
        let mut diagnostics = client.diagnostics(&uri, 1);
        diagnostics.sort_by_key(|d| d["range"]["start"]["line"].as_u64());
        let got: Vec<u64> = diagnostics
            .iter()
            .map(|d| d["severity"].as_u64().unwrap())
            .collect();
        assert_eq!(got, severities, "{baseline}: {diagnostics:?}");
        let old = diagnostics[0]["message"].as_str().unwrap();
        assert_eq!(
            old.ends_with("(present before this change)"),
            baseline == "HEAD",
            "{old}"
        );
        assert_eq!(client.shutdown(), 0);
    }
}
