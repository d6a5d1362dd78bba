//! The real ComfyUI client (`qwenedit::comfy`) against the fake ComfyUI: a full run of the
//! shipped workflow, upload naming, every rejection (`node_errors` on a 200, missing model,
//! unknown class), runtime errors, slow history, missing outputs, dropped sockets, the cache,
//! interrupts (explicit and on timeout), `object_info` in both combo syntaxes, models, system
//! stats, and a server that is down.

use std::path::Path;
use std::time::Duration;

use qwenedit::comfy::client::combo_options;
use qwenedit::comfy::oneshot::run_graph;
use qwenedit::comfy::{ComfyClient, ComfyError, Event, Patch, Socket, Workflow};
use serde_json::{Value, json};

use crate::support::fake_comfy::{Behavior, FakeComfy};

const LORA: &str = "Qwen-Image-Edit-2511-Lightning-4steps-V1.0-bf16.safetensors";

fn client(fake: &FakeComfy) -> ComfyClient {
    ComfyClient::new(fake.url(), Duration::from_secs(10))
}

fn png(w: u32, h: u32, shade: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, shade]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn shipped() -> Workflow {
    Workflow::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/qwen-image-edit-2511.json"),
    )
    .expect("the shipped workflow loads")
}

fn shipped_for(image: &str, prefix: &str) -> Value {
    shipped()
        .patch(&Patch {
            images: vec![image.to_string()],
            prompt: Some("make the sky purple".into()),
            seed: 42,
            output_prefix: prefix.into(),
            ..Patch::default()
        })
        .expect("patch for one image")
}

/// LoadImage → ImageInvert → SaveImage, model-free (comfyui.md §4).
fn small_graph(image: &str, prefix: &str) -> Value {
    json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    })
}

/// A fake with one uploaded input; returns the client and LoadImage's reference to it.
async fn with_input(fake: &FakeComfy) -> (ComfyClient, String) {
    let c = client(fake);
    let name = c
        .upload_image(png(40, 30, 9), "in.png", "qwenedit")
        .await
        .expect("upload");
    (c, name)
}

async fn run(c: &ComfyClient, graph: &Value, id: &str) -> Result<Vec<Vec<u8>>, ComfyError> {
    run_graph(c, graph, id, "3", Duration::from_secs(15), |_| {}).await
}

#[tokio::test]
async fn the_shipped_workflow_runs_for_one_image() {
    let fake = FakeComfy::start().await;
    let c = client(&fake);
    let image = c
        .upload_image(png(80, 60, 200), "job-1.png", "qwenedit")
        .await
        .unwrap();
    assert_eq!(image, "qwenedit/job-1.png");
    let wf = shipped();
    let graph = shipped_for(&image, "qwenedit/job-1");
    let mut progress = Vec::new();
    let images = run_graph(
        &c,
        &graph,
        "job-1",
        wf.output_node(),
        Duration::from_secs(15),
        |p| progress.push(p),
    )
    .await
    .expect("the run succeeds");
    assert_eq!(images.len(), 1);
    let out = image::load_from_memory(&images[0]).expect("a decodable image");
    assert_eq!((out.width(), out.height()), (80, 60), "the input, inverted");
    assert_eq!(out.to_rgb8().get_pixel(0, 0).0, [255, 255, 55]);
    assert_eq!(progress, vec![25, 50, 75, 100, 100]);

    let seen = fake.prompts();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].id, "job-1");
    assert!(
        seen[0].client_id.is_some(),
        "the client always sends client_id"
    );
    assert_eq!(seen[0].graph["78"]["inputs"]["image"], "qwenedit/job-1.png");
    assert!(
        seen[0].graph.get("79").is_none(),
        "unused image slots are removed"
    );
    let history = c.history("job-1").await.unwrap().expect("history");
    assert!(history.succeeded());
    let file = &history.outputs[wf.output_node()].images[0];
    assert_eq!(
        (
            file.filename.as_str(),
            file.subfolder.as_str(),
            file.kind.as_str()
        ),
        ("job-1_00001_.png", "qwenedit", "output")
    );
    assert_eq!(fake.finished().len(), 1);
}

#[tokio::test]
async fn uploads_keep_or_rename_names_as_comfyui_does() {
    let fake = FakeComfy::start().await;
    let c = client(&fake);
    let a = png(8, 8, 1);
    let b = png(8, 8, 2);
    // The client overwrites: same name, same answer.
    assert_eq!(
        c.upload_image(a.clone(), "x.png", "tg").await.unwrap(),
        "tg/x.png"
    );
    assert_eq!(
        c.upload_image(b.clone(), "x.png", "tg").await.unwrap(),
        "tg/x.png"
    );
    assert_eq!(
        c.upload_image(a.clone(), "y.png", "").await.unwrap(),
        "y.png"
    );

    // Without overwrite: same bytes keep the name, different bytes get " (1)".
    let http = reqwest::Client::new();
    let url = fake.url().join("upload/image").unwrap();
    let upload = |bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new()
            .part(
                "image",
                reqwest::multipart::Part::bytes(bytes).file_name("y.png"),
            )
            .text("type", "input");
        http.post(url.clone()).multipart(form).send()
    };
    let same: Value = upload(a.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(
        same,
        json!({"name": "y.png", "subfolder": "", "type": "input"})
    );
    let other: Value = upload(b.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(other["name"], "y (1).png");

    let no_image = http
        .post(url.clone())
        .multipart(reqwest::multipart::Form::new().text("type", "input"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_image.status(), 400);
    assert_eq!(no_image.text().await.unwrap(), "");

    let names: Vec<(String, String, usize)> = fake
        .uploads()
        .into_iter()
        .map(|u| (u.name, u.subfolder, u.len))
        .collect();
    assert_eq!(
        names,
        vec![
            ("x.png".into(), "tg".into(), a.len()),
            ("x.png".into(), "tg".into(), b.len()),
            ("y.png".into(), "".into(), a.len()),
            ("y.png".into(), "".into(), a.len()),
            ("y (1).png".into(), "".into(), b.len()),
        ]
    );
    // The stored bytes are what `/view` serves for inputs.
    let view = http
        .get(
            fake.url()
                .join("view?filename=x.png&subfolder=tg&type=input")
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(view.bytes().await.unwrap().to_vec(), b);
}

#[tokio::test]
async fn node_errors_on_a_200_are_a_rejection_and_leave_the_queue() {
    let fake = FakeComfy::start().await;
    let (c, image) = with_input(&fake).await;
    // Keep the executor busy so the half-valid prompt is still pending when the client reacts.
    fake.script(Behavior::Hang);
    c.queue_prompt(&small_graph(&image, "busy/x"), "busy", "watcher")
        .await
        .unwrap();
    fake.wait_started(1).await;

    fake.script(Behavior::NodeErrors);
    let err = c
        .queue_prompt(&small_graph(&image, "half/x"), "half", "watcher")
        .await
        .expect_err("node_errors on a 200 is a failure");
    let ComfyError::Rejected(msg) = &err else {
        panic!("expected Rejected, got {err:?}");
    };
    assert!(msg.contains("Invalid image file: nope.png"), "{msg}");
    assert!(!err.is_transient());
    assert_eq!(fake.deleted(), vec!["half".to_string()]);
    let queue = c.queue().await.unwrap();
    assert!(!queue.contains("half"), "{queue:?}");
    assert_eq!(queue.running, vec!["busy".to_string()]);
    // The client's extra interrupt names the rejected id, so the busy run goes on.
    assert_eq!(fake.interrupts(), vec![Some("half".to_string())]);

    c.interrupt("busy").await.unwrap();
    fake.wait_finished(1).await;
    assert!(c.history("busy").await.unwrap().unwrap().was_interrupted());
    assert_eq!(
        c.history("half").await.unwrap().map(|h| h.succeeded()),
        None
    );
}

#[tokio::test]
async fn validation_failures_are_rejections_naming_the_cause() {
    let fake = FakeComfy::start().await;
    let (c, image) = with_input(&fake).await;

    fake.set_models("vae", &[]);
    let err = c
        .queue_prompt(&shipped_for(&image, "qwenedit/v"), "no-vae", "cid")
        .await
        .unwrap_err();
    let ComfyError::Rejected(msg) = &err else {
        panic!("expected Rejected, got {err:?}");
    };
    assert!(
        msg.contains("vae_name: 'qwen_image_vae.safetensors' not in ['pixel_space']"),
        "{msg}"
    );
    assert!(!err.is_transient());

    let missing_image = c
        .queue_prompt(&small_graph("qwenedit/never.png", "p/x"), "no-image", "cid")
        .await
        .unwrap_err();
    assert!(
        matches!(&missing_image, ComfyError::Rejected(m) if m.contains("Invalid image file: qwenedit/never.png")),
        "{missing_image:?}"
    );

    let mut unknown = small_graph(&image, "p/x");
    unknown["2"]["class_type"] = json!("NoSuchNode");
    let err = c
        .queue_prompt(&unknown, "unknown", "cid")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ComfyError::Rejected(m) if m.contains("node NoSuchNode does not exist")),
        "{err:?}"
    );
    assert!(fake.prompts().is_empty(), "nothing was queued");

    fake.script(Behavior::Http500);
    let err = c
        .queue_prompt(&small_graph(&image, "p/x"), "five-hundred", "cid")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ComfyError::Http { status: 500, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn a_runtime_error_is_an_execution_error() {
    let fake = FakeComfy::start().await;
    let (c, image) = with_input(&fake).await;
    fake.script(Behavior::ExecutionError);
    let err = run(&c, &small_graph(&image, "e/x"), "broken")
        .await
        .unwrap_err();
    let ComfyError::Execution {
        node_type,
        exception_type,
        message,
    } = &err
    else {
        panic!("expected Execution, got {err:?}");
    };
    assert_eq!(node_type, "LoadImage");
    assert_eq!(exception_type, "PIL.UnidentifiedImageError");
    assert!(message.contains("/opt/comfyui/input/"), "{message}");
    // The server stays healthy.
    assert_eq!(
        run(&c, &small_graph(&image, "e/y"), "fine")
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_slow_history_entry_still_completes() {
    let fake = FakeComfy::start().await;
    let (c, image) = with_input(&fake).await;
    fake.script(Behavior::SlowHistory { ms: 300 });
    let images = run(&c, &small_graph(&image, "slow/x"), "slow")
        .await
        .unwrap();
    assert_eq!(images.len(), 1);
    image::load_from_memory(&images[0]).unwrap();
}

#[tokio::test]
async fn a_dropped_socket_is_recovered_through_history() {
    let fake = FakeComfy::start().await;
    let (c, image) = with_input(&fake).await;
    fake.script(Behavior::DropSocketsAfterStep(2));
    let mut progress = Vec::new();
    let images = run_graph(
        &c,
        &small_graph(&image, "drop/x"),
        "drop",
        "3",
        Duration::from_secs(15),
        |p| progress.push(p),
    )
    .await
    .expect("the run finished while the socket was gone");
    assert_eq!(images.len(), 1);
    assert_eq!(progress, vec![25, 50, 100]);
}

#[tokio::test]
async fn a_missing_output_file_is_missing_output() {
    let fake = FakeComfy::start().await;
    let (c, image) = with_input(&fake).await;
    fake.script(Behavior::MissingOutput);
    let err = run(&c, &small_graph(&image, "gone/x"), "gone")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ComfyError::MissingOutput(name) if name == "x_00001_.png"),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_identical_graph_is_served_from_the_cache() {
    let fake = FakeComfy::start().await;
    let (c, image) = with_input(&fake).await;
    let graph = small_graph(&image, "cache/x");
    let first = run(&c, &graph, "first").await.unwrap();
    let second = run(&c, &graph, "second").await.unwrap();
    assert_eq!(first, second);
    let name = |id: &'static str| {
        let c = c.clone();
        async move {
            c.history(id).await.unwrap().unwrap().outputs["3"].images[0]
                .filename
                .clone()
        }
    };
    assert_eq!(name("first").await, "x_00001_.png");
    assert_eq!(name("second").await, "x_00001_.png", "no new file");
    let third = run(&c, &small_graph(&image, "cache/y"), "third")
        .await
        .unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(name("third").await, "y_00001_.png");
}

#[tokio::test]
async fn a_hanging_run_is_interrupted_and_every_socket_hears_it() {
    let fake = FakeComfy::start().await;
    let (c, image) = with_input(&fake).await;
    let mut watcher = Socket::connect(&fake.url(), "watcher").await.unwrap();
    fake.script(Behavior::Hang);
    let graph = small_graph(&image, "hang/x");
    let task = {
        let c = c.clone();
        tokio::spawn(async move { run(&c, &graph, "hang").await })
    };
    fake.wait_started(1).await;
    c.interrupt("some-other-id").await.unwrap();
    c.interrupt("hang").await.unwrap();
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, ComfyError::Interrupted), "{err:?}");
    assert_eq!(
        fake.interrupts(),
        vec![Some("some-other-id".to_string()), Some("hang".to_string())]
    );
    // execution_interrupted is broadcast, even to a socket of another client id.
    loop {
        match watcher.next().await.expect("the watcher socket stays open") {
            Event::Interrupted { prompt_id } => {
                assert_eq!(prompt_id, "hang");
                break;
            }
            Event::ExecutionStart { .. } | Event::Executing { .. } => {
                panic!("execution events go to the submitting client only")
            }
            _ => {}
        }
    }
    watcher.close().await;
    assert!(c.history("hang").await.unwrap().unwrap().was_interrupted());
}

#[tokio::test]
async fn a_run_past_its_timeout_is_interrupted() {
    let fake = FakeComfy::start().await;
    let (c, image) = with_input(&fake).await;
    fake.script(Behavior::Hang);
    let err = run_graph(
        &c,
        &small_graph(&image, "late/x"),
        "late",
        "3",
        Duration::from_secs(1),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ComfyError::Protocol(_)), "{err:?}");
    assert_eq!(fake.interrupts(), vec![Some("late".to_string())]);
    fake.wait_finished(1).await;
    assert!(c.history("late").await.unwrap().unwrap().was_interrupted());
}

#[tokio::test]
async fn object_info_and_combo_options_in_both_syntaxes() {
    let fake = FakeComfy::start().await;
    let c = client(&fake);
    assert_eq!(c.object_info("NoSuchNode").await.unwrap(), None);

    let vae = c.object_info("VAELoader").await.unwrap().expect("known");
    assert_eq!(
        combo_options(&vae, "vae_name").unwrap(),
        vec!["pixel_space", "qwen_image_vae.safetensors"]
    );
    let scale = c
        .object_info("ImageScaleToTotalPixels")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(scale["input"]["required"]["upscale_method"][0], "COMBO");
    assert_eq!(
        combo_options(&scale, "upscale_method").unwrap(),
        vec!["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
    );
    let clip = c.object_info("CLIPLoader").await.unwrap().unwrap();
    assert_eq!(
        combo_options(&clip, "device").unwrap(),
        vec!["default", "cpu"],
        "optional inputs too"
    );

    fake.set_models("diffusion_models", &["a.safetensors", "b.safetensors"]);
    let unet = c.object_info("UNETLoader").await.unwrap().unwrap();
    assert_eq!(
        combo_options(&unet, "unet_name").unwrap(),
        vec!["a.safetensors", "b.safetensors"]
    );
    // Every class of the shipped workflow is known.
    for class in shipped().node_types() {
        assert!(c.object_info(&class).await.unwrap().is_some(), "{class}");
    }
}

#[tokio::test]
async fn models_and_system_stats() {
    let fake = FakeComfy::start().await;
    let c = client(&fake);
    assert_eq!(c.models("loras").await.unwrap(), vec![LORA]);
    assert_eq!(
        c.models("diffusion_models").await.unwrap(),
        vec!["qwen_image_edit_2511_fp8mixed.safetensors"]
    );
    fake.set_models("loras", &[]);
    assert!(c.models("loras").await.unwrap().is_empty());

    let stats = c.system_stats().await.unwrap();
    assert_eq!(stats.system.comfyui_version, "0.3.64");
    let gpu = &stats.devices[0];
    assert_eq!(gpu.kind, "cuda");
    assert!(
        gpu.vram_total > gpu.vram_free && gpu.vram_free > 0,
        "{gpu:?}"
    );
}

#[tokio::test]
async fn a_server_that_is_down_is_unreachable_and_transient() {
    let fake = FakeComfy::start().await;
    let c = client(&fake);
    c.system_stats().await.expect("up");
    let mut socket = Socket::connect(&fake.url(), "before").await.unwrap();
    assert!(matches!(socket.next().await, Some(Event::Status { .. })));
    assert_eq!(fake.sockets(), 1);

    fake.set_down(true);
    assert_eq!(fake.sockets(), 0);
    assert_eq!(socket.next().await, None, "the socket was closed");
    // Also through the client's pooled keep-alive connection.
    let err = c.system_stats().await.unwrap_err();
    assert!(matches!(err, ComfyError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
    let err = c
        .queue_prompt(&json!({}), "while-down", "cid")
        .await
        .unwrap_err();
    assert!(matches!(err, ComfyError::Unreachable { .. }), "{err:?}");
    assert!(Socket::connect(&fake.url(), "during").await.is_err());

    fake.set_down(false);
    c.system_stats().await.expect("up again on the same port");
}

/// The next event that is not a `status` broadcast.
async fn next_non_status(socket: &mut Socket) -> Option<Event> {
    loop {
        match socket.next().await? {
            Event::Status { .. } | Event::Other => continue,
            ev => return Some(ev),
        }
    }
}

/// Asserts that no execution event arrives within a short while (absence cannot be awaited).
async fn assert_silent(socket: &mut Socket, who: &str) {
    let got = tokio::time::timeout(Duration::from_millis(300), next_non_status(socket)).await;
    assert!(got.is_err(), "{who} got {got:?}");
}

#[tokio::test]
async fn the_fake_queue_runs_front_first_and_deletes_only_pending() {
    let fake = FakeComfy::start().await;
    let (c, image) = with_input(&fake).await;
    fake.script(Behavior::Hang);
    c.queue_prompt(&small_graph(&image, "q/busy"), "busy", "cid")
        .await
        .unwrap();
    fake.wait_started(1).await;
    for id in ["a", "b"] {
        c.queue_prompt(&small_graph(&image, &format!("q/{id}")), id, "cid")
            .await
            .unwrap();
    }
    let http = reqwest::Client::new();
    let prompt_url = fake.url().join("prompt").unwrap();
    let front: Value = http
        .post(prompt_url.clone())
        .json(&json!({"prompt": small_graph(&image, "q/c"), "client_id": "cid", "prompt_id": "c", "front": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(front["number"], -3);
    let queue = c.queue().await.unwrap();
    assert_eq!(queue.running, vec!["busy"]);
    assert_eq!(queue.pending, vec!["c", "a", "b"]);

    let malformed = http
        .post(prompt_url.clone())
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 500);
    assert!(
        malformed
            .text()
            .await
            .unwrap()
            .contains("Server got itself in trouble")
    );

    c.delete_pending(&["busy".into(), "a".into()])
        .await
        .unwrap();
    assert_eq!(fake.deleted(), vec!["a"]);
    let queue = c.queue().await.unwrap();
    assert_eq!(
        (queue.running, queue.pending),
        (vec!["busy".into()], vec!["c".into(), "b".into()])
    );

    c.interrupt("busy").await.unwrap();
    fake.wait_finished(3).await;
    let order: Vec<String> = fake.finished().into_iter().map(|f| f.0).collect();
    assert_eq!(order, vec!["busy", "c", "b"]);
    assert!(
        c.history("a").await.unwrap().is_none(),
        "a deleted prompt never runs"
    );
    let numbers: Vec<i64> = fake.prompts().iter().map(|p| p.number).collect();
    assert_eq!(
        numbers,
        vec![0, 1, 2, -3],
        "the malformed POST took number 4"
    );

    let status = |path: &'static str| {
        let http = http.clone();
        let url = fake.url().join(path).unwrap();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("view?filename=../x.png").await, 400);
    assert_eq!(status("view?filename=nope.png&type=output").await, 404);
    assert_eq!(
        status("view?filename=b_00001_.png&subfolder=q&type=output").await,
        200
    );
    assert_eq!(
        status("view?filename=b_00001_.png&subfolder=q&type=bogus").await,
        400
    );
}

#[tokio::test]
async fn the_fake_reconnect_gives_the_current_node_and_no_replay() {
    let fake = FakeComfy::start().await;
    let (c, image) = with_input(&fake).await;
    fake.script(Behavior::Succeed {
        steps: 1,
        step_ms: 1000,
    });
    let mut first = Socket::connect(&fake.url(), "re").await.unwrap();
    c.queue_prompt(&small_graph(&image, "re/x"), "p", "re")
        .await
        .unwrap();
    loop {
        if let Some(Event::Executing { node: Some(n), .. }) = next_non_status(&mut first).await {
            assert_eq!(n, "1");
            break;
        }
    }
    first.close().await;
    fake.wait_sockets(0).await;
    let mut second = Socket::connect(&fake.url(), "re").await.unwrap();
    assert!(matches!(second.next().await, Some(Event::Status { .. })));
    assert_eq!(
        second.next().await,
        Some(Event::Executing {
            prompt_id: None,
            node: Some("1".into())
        })
    );
    let mut rest = Vec::new();
    while let Some(ev) = next_non_status(&mut second).await {
        let end = matches!(&ev, Event::Executing { node: None, .. });
        rest.push(ev);
        if end {
            break;
        }
    }
    assert!(
        matches!(
            rest[0],
            Event::Progress {
                value: 1.0,
                max: 1.0,
                ..
            }
        ),
        "{rest:?}"
    );
    assert!(
        !rest
            .iter()
            .any(|e| matches!(e, Event::ExecutionStart { .. })),
        "no replay"
    );
    assert!(rest.iter().any(|e| matches!(e, Event::Success { .. })));
}

#[tokio::test]
async fn the_fake_makes_the_newer_of_two_sockets_deaf_and_ignores_prompts_without_client_id() {
    let fake = FakeComfy::start().await;
    let (c, image) = with_input(&fake).await;
    let mut older = Socket::connect(&fake.url(), "dup").await.unwrap();
    let mut newer = Socket::connect(&fake.url(), "dup").await.unwrap();
    let mut other = Socket::connect(&fake.url(), "other").await.unwrap();
    c.queue_prompt(&small_graph(&image, "dup/a"), "a", "dup")
        .await
        .unwrap();
    assert_eq!(
        next_non_status(&mut newer).await,
        Some(Event::ExecutionStart {
            prompt_id: "a".into()
        }),
        "the newer socket took over"
    );
    while next_non_status(&mut newer).await
        != Some(Event::Executing {
            prompt_id: Some("a".into()),
            node: None,
        })
    {}
    fake.wait_finished(1).await;
    assert_silent(&mut older, "the older socket").await;

    older.close().await;
    fake.wait_sockets(2).await;
    c.queue_prompt(&small_graph(&image, "dup/b"), "b", "dup")
        .await
        .unwrap();
    // A prompt without client_id: nobody hears its execution.
    reqwest::Client::new()
        .post(fake.url().join("prompt").unwrap())
        .json(&json!({"prompt": small_graph(&image, "dup/c"), "prompt_id": "c"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    fake.wait_finished(3).await;
    assert!(c.history("c").await.unwrap().unwrap().succeeded());
    let deaf = tokio::time::timeout(Duration::from_millis(300), newer.next()).await;
    assert!(
        deaf.is_err(),
        "after the older socket closed, the newer gets nothing: {deaf:?}"
    );
    assert_silent(&mut other, "another client").await;
}
