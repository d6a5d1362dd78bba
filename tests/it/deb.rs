//! The .deb: built by scripts/build-deb (from the test profile's binary), inspected with
//! dpkg-deb and lintian, then installed on THIS machine, upgraded, removed and purged. CI is a
//! throwaway root on Debian; elsewhere the test says why it does not run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "qwenedit"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
}

/// Purges the package if the test installed it, also when the test fails half way.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "qwenedit"]).output();
    }
}

fn build(extra: &[&str]) -> PathBuf {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = stdout(
        Command::new(format!("{root}/scripts/build-deb"))
            .arg("--fast")
            // This test's build made the binary (CARGO_BIN_EXE_qwenedit) already.
            .env("QWENEDIT_DEB_PREBUILT", "1")
            .args(extra)
            .current_dir(root),
    );
    let path = PathBuf::from(out.trim().lines().last().unwrap_or_default());
    assert!(path.is_file(), "build-deb printed {out:?}");
    path
}

fn mode_owner(path: &str) -> String {
    stdout(Command::new("stat").args(["-c", "%a %U:%G", path]))
        .trim()
        .to_string()
}

#[test]
fn the_deb_builds_installs_upgrades_and_purges() {
    let root = is_root();
    if !root || !have("dpkg") || !have("dpkg-deb") {
        println!(
            "SKIPPED: the .deb test installs a package on this machine and needs root and dpkg \
             (CI runs it as root on Debian)"
        );
        return;
    }
    assert!(
        !installed(),
        "qwenedit is already installed here; this test installs and purges it. \
         Run `dpkg --purge qwenedit` first if this machine is a throwaway."
    );
    let started = std::time::Instant::now();
    let deb = build(&[]);
    let name = deb.file_name().unwrap().to_string_lossy().to_string();
    assert_eq!(
        name,
        format!("qwenedit_{}-1_amd64.deb", env!("CARGO_PKG_VERSION"))
    );

    // What is in it.
    let contents = stdout(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/qwenedit",
        "/systemd/system/qwenedit.service",
        "./etc/qwenedit/config.toml",
        "./usr/share/qwenedit/presets/anime.toml",
        "./usr/share/qwenedit/workflows/qwen-image-edit-2511.json",
        "./usr/share/man/man1/qwenedit.1.gz",
        "./usr/share/doc/qwenedit/changelog.Debian.gz",
        "./usr/share/doc/qwenedit/copyright",
    ] {
        assert!(contents.contains(path), "{path} missing:\n{contents}");
    }
    assert!(
        !contents.contains("credentials"),
        "no secrets in the package"
    );
    let info = stdout(Command::new("dpkg-deb").arg("-I").arg(&deb));
    for field in [
        "Package: qwenedit",
        "Architecture: amd64",
        "adduser",
        "postinst",
        "postrm",
    ] {
        assert!(info.contains(field), "{field} missing:\n{info}");
    }
    let package = stdout(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Package"));
    assert_eq!(package.trim(), "qwenedit");
    let ctrl = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(ctrl.path()));
    let conffiles = std::fs::read_to_string(ctrl.path().join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/qwenedit/config.toml");
    let config = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/deb/config.toml"),
    )
    .unwrap();
    assert!(!config.contains("token ="), "the conffile holds no token");

    if have("lintian") {
        run(Command::new("lintian")
            .args([
                "--fail-on",
                "error",
                "--suppress-tags",
                "initial-upload-closes-no-bugs",
            ])
            .arg(&deb));
    } else {
        panic!("lintian is missing: run scripts/setup-test-deps");
    }

    // Install.
    let _purge = Purge;
    run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(installed());
    let version = stdout(Command::new("/usr/bin/qwenedit").arg("--version"));
    assert_eq!(
        version.trim(),
        format!("qwenedit {}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        mode_owner("/etc/qwenedit/credentials"),
        "600 qwenedit:qwenedit"
    );
    assert_eq!(mode_owner("/var/lib/qwenedit"), "750 qwenedit:qwenedit");
    assert_eq!(mode_owner("/etc/qwenedit/config.toml"), "644 root:root");
    let unit = std::fs::read_to_string(
        [
            "/usr/lib/systemd/system/qwenedit.service",
            "/lib/systemd/system/qwenedit.service",
        ]
        .iter()
        .find(|p| Path::new(p).exists())
        .expect("the unit is installed"),
    )
    .unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=qwenedit",
        "StateDirectory=qwenedit",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(
            unit.contains(line),
            "{line:?} missing from the unit:\n{unit}"
        );
    }
    assert!(
        Path::new("/etc/systemd/system/multi-user.target.wants/qwenedit.service").exists(),
        "the service is enabled"
    );
    let man = stdout(Command::new("sh").args(["-c", "zcat /usr/share/man/man1/qwenedit.1.gz"]));
    assert!(man.contains(".TH qwenedit 1"), "{man}");

    // doctor, as the service user: reads the config and the (empty) credentials, finds the
    // shipped presets and workflow, and says what is missing. No ComfyUI here: it fails.
    let doctor = Command::new("runuser")
        .args(["-u", "qwenedit", "--", "/usr/bin/qwenedit", "doctor"])
        .env_remove("QWENEDIT_CONFIG")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(
        doctor.status.code(),
        Some(1),
        "{report}\n{}",
        String::from_utf8_lossy(&doctor.stderr)
    );
    assert!(
        report.contains("53 presets") || report.contains("presets"),
        "{report}"
    );
    assert!(report.contains("no token"), "{report}");
    assert!(report.contains("/var/lib/qwenedit"), "{report}");

    // The operator configures it; data appears.
    std::fs::write(
        "/etc/qwenedit/credentials",
        "# token\n123456789:AAE-test-token\n",
    )
    .unwrap();
    let mut config = std::fs::read_to_string("/etc/qwenedit/config.toml").unwrap();
    config = config.replace("admins = []", "admins = [42]");
    std::fs::write("/etc/qwenedit/config.toml", &config).unwrap();
    std::fs::write("/var/lib/qwenedit/marker", "data").unwrap();
    std::fs::write(
        "/etc/qwenedit/presets.d/mine.toml",
        "# the operator's preset",
    )
    .unwrap();

    // Upgrade: config, credentials and data stay.
    let v2 = build(&["--deb-revision", "2"]);
    assert!(v2.to_string_lossy().ends_with("-2_amd64.deb"), "{v2:?}");
    run(Command::new("dpkg")
        .args(["--force-confold", "-i"])
        .arg(&v2));
    assert_eq!(
        std::fs::read_to_string("/etc/qwenedit/config.toml").unwrap(),
        config
    );
    assert!(
        std::fs::read_to_string("/etc/qwenedit/credentials")
            .unwrap()
            .contains("AAE-test-token")
    );
    assert_eq!(
        mode_owner("/etc/qwenedit/credentials"),
        "600 qwenedit:qwenedit"
    );
    assert!(Path::new("/var/lib/qwenedit/marker").exists());
    assert!(Path::new("/etc/qwenedit/presets.d/mine.toml").exists());
    let status = stdout(Command::new("dpkg-query").args(["-W", "-f=${Version}", "qwenedit"]));
    assert_eq!(status, format!("{}-2", env!("CARGO_PKG_VERSION")));

    // Remove keeps config and data; purge takes them.
    run(Command::new("dpkg").args(["--remove", "qwenedit"]));
    assert!(!Path::new("/usr/bin/qwenedit").exists());
    assert!(Path::new("/etc/qwenedit/config.toml").exists());
    assert!(Path::new("/var/lib/qwenedit/marker").exists());
    run(Command::new("dpkg").args(["--purge", "qwenedit"]));
    assert!(!Path::new("/etc/qwenedit").exists(), "purged config");
    assert!(!Path::new("/var/lib/qwenedit").exists(), "purged data");
    println!("the .deb test took {:.0?}", started.elapsed());
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_credentials_file_with_only_comments_means_no_token_yet() {
    use qwenedit::config::Config;
    use secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    let config = dir.path().join("config.toml");
    let text = "[telegram]\ntoken_file = \"credentials\"\n";
    let load = || Config::from_toml(text, &config, std::iter::empty());

    std::fs::write(&creds, "# The Telegram bot token goes below\n").unwrap();
    assert!(
        load().unwrap().telegram.token.is_none(),
        "the bot stays off"
    );
    std::fs::write(&creds, "# The Telegram bot token goes below\n123:ABC\n").unwrap();
    let token = load().unwrap().telegram.token.unwrap();
    assert_eq!(token.expose_secret(), "123:ABC");
    std::fs::write(&creds, "123:ABC\n456:DEF\n").unwrap();
    let e = load().unwrap_err().to_string();
    assert!(e.contains("more than one line"), "{e}");
    std::fs::write(&creds, "\n").unwrap();
    assert!(load().unwrap_err().to_string().ends_with("is empty"));
}
