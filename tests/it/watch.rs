//! The watched folder against a fake ComfyUI: the app runs its workers; the watcher is driven
//! scan by scan (no timers, no sleeps), as `watch::run` would on its interval.

use std::path::Path;

use qwenedit::app::Clock;
use qwenedit::config::Watch;
use qwenedit::domain::JobId;
use qwenedit::watch::{Entry, Watcher};
use qwenedit::worker::JobEventKind;

use crate::support::app::{TestApp, png};
use crate::support::fake_comfy::{Behavior, FakeComfy};

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, _| image::Rgb([x as u8, 80, 160]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    out
}

fn cfg(root: &Path) -> Watch {
    let in_dir = root.join("in");
    std::fs::create_dir_all(&in_dir).unwrap();
    Watch {
        out_dir: root.join("out"),
        in_dir,
        preset: Some("anime".into()),
        prompt: None,
        user: None,
        interval: std::time::Duration::from_secs(2),
    }
}

/// Waits for the jobs of `names` still running (a fast job may be collected already).
async fn finish(t: &mut TestApp, w: &Watcher, names: &[&str]) {
    for name in names {
        match w.entry(name) {
            Some(Entry::Submitted { job, .. }) => {
                let job: JobId = job.parse().unwrap();
                assert!(matches!(
                    t.wait_done(job).await,
                    JobEventKind::Succeeded { .. }
                ));
            }
            Some(Entry::Done { .. }) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

fn job_of(w: &Watcher, name: &str) -> JobId {
    match w.entry(name) {
        Some(Entry::Submitted { job, .. }) => job.parse().unwrap(),
        other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_images_become_results_and_half_written_and_bad_files_do_not() {
    let comfy = FakeComfy::start().await;
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    let mut w = Watcher::open(t.app.clone(), c.clone()).unwrap();

    std::fs::write(c.in_dir.join("photo.jpg"), jpeg(64, 48)).unwrap();
    std::fs::write(c.in_dir.join("photo.png"), png(64, 48)).unwrap();
    std::fs::write(c.in_dir.join("notes.txt"), "not an image").unwrap();
    std::fs::write(c.in_dir.join(".hidden.png"), png(8, 8)).unwrap();
    let whole = png(80, 60);
    std::fs::write(c.in_dir.join("slow.png"), &whole[..whole.len() / 2]).unwrap();
    let s = w.scan().unwrap();
    assert_eq!(
        (s.waiting, s.running),
        (4, 0),
        "nothing is taken on first sight"
    );

    // The copy of slow.png goes on; the others are stable.
    std::fs::write(c.in_dir.join("slow.png"), &whole[..whole.len() * 3 / 4]).unwrap();
    let s = w.scan().unwrap();
    assert_eq!(
        (s.waiting, s.running + s.done, s.failed),
        (1, 2, 1),
        "{s:?}"
    );
    assert!(matches!(w.entry("slow.png"), Some(Entry::Seen { .. })));
    let reason = std::fs::read_to_string(c.out_dir.join("failed/notes.txt.txt")).unwrap();
    assert!(reason.starts_with("not a usable image"), "{reason}");
    assert!(
        c.out_dir.join("failed/notes.txt").exists(),
        "the input is kept with its reason"
    );

    std::fs::write(c.in_dir.join("slow.png"), &whole).unwrap();
    w.scan().unwrap();
    assert!(
        matches!(w.entry("slow.png"), Some(Entry::Seen { .. })),
        "changed again"
    );
    w.scan().unwrap();
    finish(&mut t, &w, &["photo.jpg", "photo.png", "slow.png"]).await;
    // A file dropped while the batch runs joins it.
    std::fs::write(c.in_dir.join("late.webp.part"), png(10, 10)).unwrap();
    std::fs::rename(c.in_dir.join("late.webp.part"), c.in_dir.join("late.png")).unwrap();
    let s = w.scan().unwrap();
    assert_eq!((s.done, s.failed, s.waiting), (3, 1, 1), "{s:?}");
    w.scan().unwrap();
    finish(&mut t, &w, &["late.png"]).await;
    let s = w.scan().unwrap();
    assert_eq!((s.done, s.failed, s.running, s.waiting), (4, 1, 0, 0));

    let mut outputs: Vec<String> = std::fs::read_dir(&c.out_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    outputs.sort();
    // Whichever photo finished first is `photo.edited.png`; the other keeps its extension.
    let other = if outputs.contains(&"photo.jpg.edited.png".to_string()) {
        "photo.jpg.edited.png"
    } else {
        "photo.png.edited.png"
    };
    let mut expected = vec![
        "late.edited.png",
        "photo.edited.png",
        other,
        "slow.edited.png",
    ];
    expected.sort();
    assert_eq!(outputs, expected, "same stems never overwrite each other");
    for o in &outputs {
        let bytes = std::fs::read(c.out_dir.join(o)).unwrap();
        assert!(image::load_from_memory(&bytes).is_ok());
    }
    assert_eq!(comfy.prompts().len(), 4);
    // Free: the watch user is unlimited.
    assert_eq!(t.balance(qwenedit::domain::UserId::new(0)), 0);
    let again = w.scan().unwrap();
    assert_eq!(again.done, 4, "nothing is taken twice");
    assert_eq!(comfy.prompts().len(), 4);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_batch_submits_nothing_twice() {
    let comfy = FakeComfy::start().await;
    comfy.set_down(true);
    let t = TestApp::start(&[comfy.url()], "").await;
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    let mut w = Watcher::open(t.app.clone(), c.clone()).unwrap();
    for name in ["a.png", "b.png"] {
        std::fs::write(c.in_dir.join(name), png(30, 30)).unwrap();
    }
    w.scan().unwrap();
    std::fs::write(c.in_dir.join("c.png"), png(30, 30)).unwrap();
    w.scan().unwrap();
    let a = job_of(&w, "a.png");
    let b = job_of(&w, "b.png");
    assert!(matches!(w.entry("c.png"), Some(Entry::Seen { .. })));
    drop(w);
    let config = t.dir.path().join("config.toml");
    let dir = t.stop().await;

    // The service comes back (ComfyUI too); the watcher reads its state file.
    comfy.set_down(false);
    let mut t = TestApp::start_in(dir, &config, Clock::System).await;
    let mut w = Watcher::open(t.app.clone(), c.clone()).unwrap();
    assert_eq!(job_of(&w, "a.png"), a);
    w.scan().unwrap();
    let cj = job_of(&w, "c.png");
    for job in [a, b, cj] {
        assert!(matches!(
            t.wait_done(job).await,
            JobEventKind::Succeeded { .. }
        ));
    }
    let s = w.scan().unwrap();
    assert_eq!((s.done, s.running, s.waiting), (3, 0, 0));
    let mut ids: Vec<String> = comfy.prompts().into_iter().map(|p| p.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "one job per file");
    let active = t
        .app
        .queue
        .recent_for_user(qwenedit::domain::UserId::new(0), 100)
        .unwrap();
    assert_eq!(active.len(), 3);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comfyui_failure_lands_in_failed_with_its_reason() {
    let comfy = FakeComfy::start().await;
    comfy.set_default(Behavior::ExecutionError);
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    let mut w = Watcher::open(t.app.clone(), c.clone()).unwrap();
    std::fs::write(c.in_dir.join("cat.png"), png(30, 30)).unwrap();
    w.scan().unwrap();
    w.scan().unwrap();
    let job = job_of(&w, "cat.png");
    assert!(matches!(
        t.wait_done(job).await,
        JobEventKind::Failed { .. }
    ));
    let s = w.scan().unwrap();
    assert_eq!(s.failed, 1);
    assert_eq!(s.recent_failures[0].0, "cat.png");
    assert!(c.out_dir.join("failed/cat.png").exists());
    let reason = std::fs::read_to_string(c.out_dir.join("failed/cat.png.txt")).unwrap();
    assert!(reason.starts_with("the edit failed"), "{reason}");
    assert!(!c.out_dir.join("cat.edited.png").exists());
    t.app.watch.set(s);
    let status = qwenedit::ops::status(&t.app).unwrap();
    let html = qwenedit::web::render_live(&status).into_string();
    assert_eq!(
        status.watch.unwrap().failed,
        1,
        "the batch is on /api/status"
    );
    let start = html
        .find("<section id=\"watch\">")
        .expect("a watch section");
    let section = &html[start..];
    let section = &section[..section.find("</section>").unwrap() + 10];
    let section = section
        .replace(&root.path().display().to_string(), "[ROOT]")
        .replace(&job.to_string(), "[JOB]");
    insta::assert_snapshot!("watch_section", section);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_folder_or_preset_is_refused_at_start() {
    let t = TestApp::start(&["http://127.0.0.1:9".parse().unwrap()], "").await;
    let root = tempfile::tempdir().unwrap();
    let mut c = cfg(root.path());
    c.preset = Some("no-such-preset".into());
    let e = Watcher::open(t.app.clone(), c.clone()).err().unwrap();
    assert_eq!(e.to_string(), "unknown preset \"no-such-preset\"");
    c.preset = Some("anime".into());
    c.in_dir = root.path().join("missing");
    assert!(
        Watcher::open(t.app.clone(), c)
            .err()
            .unwrap()
            .to_string()
            .ends_with("is not a folder")
    );
    t.stop().await;
}

/// `qwenedit watch` while the service runs: the same watcher through the operator API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_running_service_api_the_batch_is_the_same() {
    use qwenedit::watch::remote::ApiEngine;
    use secrecy::ExposeSecret;

    let comfy = FakeComfy::start().await;
    let mut t = TestApp::start(&[comfy.url()], "").await;
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    std::fs::write(c.in_dir.join("dog.png"), png(40, 40)).unwrap();
    std::fs::write(c.in_dir.join("readme.md"), "# not an image").unwrap();
    let base = format!("http://{}/api/v1", t.addr);
    let token = t.app.admin_token.expose_secret().to_string();
    // Blocking HTTP: every watcher step runs off the runtime.
    let cc = c.clone();
    let w = tokio::task::spawn_blocking(move || {
        let engine = ApiEngine::new(base, token.into()).unwrap();
        let mut w = Watcher::with_engine(Box::new(engine), cc).unwrap();
        w.scan().unwrap();
        w.scan().unwrap();
        w
    })
    .await
    .unwrap();
    let job = job_of(&w, "dog.png");
    assert!(matches!(w.entry("readme.md"), Some(Entry::Failed { .. })));
    assert!(matches!(
        t.wait_done(job).await,
        JobEventKind::Succeeded { .. }
    ));
    let (w, s) = tokio::task::spawn_blocking(move || {
        let mut w = w;
        let s = w.scan().unwrap();
        drop(w);
        ((), s)
    })
    .await
    .unwrap();
    let () = w;
    assert_eq!((s.done, s.failed), (1, 1));
    assert!(c.out_dir.join("dog.edited.png").exists());
    let reason = std::fs::read_to_string(c.out_dir.join("failed/readme.md.txt")).unwrap();
    assert!(reason.starts_with("not a usable image"), "{reason}");
    // The free watch user was created through the API and the job ran as them.
    let r = t.app.queue.get(job).unwrap().unwrap();
    assert_eq!(r.user().get(), 0);
    assert_eq!(r.price().get(), 0);
    t.stop().await;
}

/// The service's own watched folder (`[watch]`), on its timer: the test waits for the status
/// the watcher publishes after each scan to count the file done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_watches_its_configured_folder() {
    let comfy = FakeComfy::start().await;
    let root = tempfile::tempdir().unwrap();
    let in_dir = root.path().join("drop");
    std::fs::create_dir_all(&in_dir).unwrap();
    std::fs::write(in_dir.join("sky.png"), png(30, 20)).unwrap();
    let extra = format!(
        "[watch]\nin_dir = {:?}\nprompt = \"make the sky purple\"\ninterval = \"50ms\"\n",
        in_dir.display().to_string()
    );
    let t = TestApp::start(&[comfy.url()], &extra).await;
    let mut board = t.app.watch.subscribe();
    let done = board.wait_for(|s| s.as_ref().is_some_and(|s| s.done >= 1));
    tokio::time::timeout(std::time::Duration::from_secs(30), done)
        .await
        .expect("no result from the service's watcher within 30 s")
        .unwrap();
    assert!(in_dir.join("edited/sky.edited.png").exists());
    let status = qwenedit::ops::status(&t.app).unwrap();
    let w = status.watch.expect("the batch is on the status");
    assert!(w.done <= 1 && w.failed == 0, "{w:?}");
    assert!(
        comfy.prompts()[0]
            .graph
            .to_string()
            .contains("make the sky purple")
    );
    t.stop().await;
}

/// Waits (up to 60 s, on the `qwenedit watch` process's JSON log as it comes) for the line
/// saying `file` was edited and written; `seen` keeps every line for the failure message.
fn wait_done(log: &std::sync::mpsc::Receiver<String>, seen: &mut Vec<String>, file: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let done = |line: &String| {
        serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| {
            v["fields"]["message"] == "watched file done" && v["fields"]["file"] == file
        })
    };
    while !seen.iter().any(done) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match log.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("{file} was never done; the watch log:\n{}", seen.join("\n")),
        }
    }
}

fn terminate(mut child: std::process::Child) -> std::process::ExitStatus {
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap()
}

/// `qwenedit watch` as the operator runs it: alone with the service stopped, then through the
/// running service's API, on the same folders — the second run does not redo the first's file.
#[test]
fn the_watch_command_runs_alone_and_through_a_running_service() {
    use crate::support::process::{Daemon, stderr_lines};

    let comfy = FakeComfy::start_in_thread();
    let dir = tempfile::tempdir().unwrap();
    // The CLI finds the service at `web.listen`: a port known in advance.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("[web]\nlisten = \"127.0.0.1:{port}\"\n");
    let text = crate::support::app::config_text(&[comfy.url()], &listen)
        .replace("level = \"warn\"", "level = \"info\"\nformat = \"json\"");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, text).unwrap();
    let (in_dir, out_dir) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir_all(&in_dir).unwrap();
    std::fs::write(in_dir.join("first.png"), png(30, 30)).unwrap();
    let watch = || {
        std::process::Command::new(crate::support::bin())
            .arg("--config")
            .arg(&config)
            .args([
                "watch",
                "in",
                "--preset",
                "anime",
                "--out",
                "out",
                "--interval",
                "1",
            ])
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };

    let mut seen = Vec::new();
    let mut alone = watch();
    wait_done(&stderr_lines(&mut alone), &mut seen, "first.png");
    assert!(out_dir.join("first.edited.png").exists());
    assert!(terminate(alone).success(), "SIGTERM stops it cleanly");

    let daemon = Daemon::start(&config);
    std::fs::write(in_dir.join("second.png"), png(30, 30)).unwrap();
    let mut through_api = watch();
    wait_done(&stderr_lines(&mut through_api), &mut seen, "second.png");
    assert!(out_dir.join("second.edited.png").exists());
    assert!(terminate(through_api).success());
    assert_eq!(comfy.prompts().len(), 2, "first.png was not edited again");
    let state = std::fs::read_to_string(out_dir.join(".qwenedit-watch.json")).unwrap();
    assert!(state.contains("first.edited.png") && state.contains("second.edited.png"));
    assert!(daemon.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_file_is_refused_without_being_read() {
    let t = TestApp::start(&["http://127.0.0.1:9".parse().unwrap()], "").await;
    let root = tempfile::tempdir().unwrap();
    let c = cfg(root.path());
    let f = std::fs::File::create(c.in_dir.join("movie.mov")).unwrap();
    f.set_len(qwenedit::watch::MAX_FILE_BYTES + 1).unwrap(); // sparse: costs no disk
    drop(f);
    let mut w = Watcher::open(t.app.clone(), c.clone()).unwrap();
    w.scan().unwrap();
    let s = w.scan().unwrap();
    assert_eq!(s.failed, 1);
    let reason = std::fs::read_to_string(c.out_dir.join("failed/movie.mov.txt")).unwrap();
    assert!(reason.starts_with("the file is too big"), "{reason}");
    t.stop().await;
}
