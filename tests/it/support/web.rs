//! The web server alone (no workers, no bot) on a seeded app with a manual clock: what the
//! status page and `/metrics` show is then exactly what the test put in.

use std::net::SocketAddr;
use std::time::Duration;

use qwenedit::app::{App, Clock};
use qwenedit::config::Config;
use qwenedit::domain::{JobError, JobId, JobSpec, Lane, Points, UserId};
use qwenedit::queue::JobResult;
use qwenedit::store::{NewUser, PaymentRecord, PaymentStatus, Rail};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// 2026-12-02 10:00:00 UTC (13:00 in Moscow, the default billing time zone).
pub const T0: i64 = 1_796_205_600_000;
pub const GPU_A: &str = "http://10.0.0.2:8188";
pub const GPU_B: &str = "http://10.0.0.3:8188";

pub struct WebApp {
    pub app: App,
    pub addr: SocketAddr,
    pub _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl WebApp {
    /// Opens an empty app (two configured GPUs) and serves it on a loopback port.
    pub async fn start(extra: &str) -> WebApp {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let backends = [GPU_A.parse().unwrap(), GPU_B.parse().unwrap()];
        std::fs::write(&path, super::app::config_text(&backends, extra)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let config = Config::from_toml(&text, &path, std::iter::empty()).unwrap();
        let (app, _) = App::open(config, Clock::manual(T0)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(qwenedit::web::serve(app.clone(), listener, async move {
            let _ = stop_rx.await;
        }));
        WebApp {
            app,
            addr,
            _dir: dir,
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(path))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap()
    }

    pub async fn text(&self, path: &str) -> String {
        let r = self.get(path).await;
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.text().await.unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }

    fn advance(&self, ms: i64) {
        self.app.clock.advance_ms(ms);
    }

    pub fn user(&self, id: i64, username: &str) -> UserId {
        let user = UserId::new(id);
        let who = NewUser {
            username: Some(username.into()),
            language: Some("ru".into()),
        };
        self.app
            .store
            .register(user, who, 100, self.app.now_ms())
            .unwrap();
        user
    }

    /// Queues a job with a predictable id.
    pub fn submit(&self, n: u128, user: UserId, preset: Option<&str>, lane: Lane) -> JobId {
        let job = JobId::from_u128((T0 as u128) << 80 | n);
        let spec = JobSpec {
            user,
            chat: Some(user.get()),
            inputs: vec![format!("inputs/seed-{n}.png")],
            preset: preset.map(Into::into),
            prompt: Some("a private prompt that the page must not show".into()),
            workflow: "qwen-image-edit-2511".into(),
            seed: 1,
            price: Points::new(30),
            lane,
        };
        qwenedit::ops::submit_edit(&self.app, job, spec).unwrap();
        job
    }

    /// Leases the next job to `backend` and finishes it after `run_ms`.
    pub fn run_next(&self, backend: &str, run_ms: i64, error: Option<&str>) -> JobId {
        let q = &self.app.queue;
        let lease = q
            .lease_next(backend, self.app.now_ms(), Duration::from_secs(60))
            .unwrap()
            .expect("a job to run");
        self.advance(run_ms);
        let record = match error {
            None => q
                .complete(
                    &lease,
                    JobResult {
                        outputs: vec![format!("results/{}/0.png", lease.id())],
                    },
                    self.app.now_ms(),
                )
                .unwrap(),
            Some(e) => match q
                .fail(&lease, &JobError::permanent(e), self.app.now_ms())
                .unwrap()
            {
                qwenedit::queue::FailOutcome::Final(r) => r,
                other => panic!("{other:?}"),
            },
        };
        qwenedit::ops::settle_job(&self.app, &record).unwrap();
        lease.id()
    }

    pub fn pay(&self, id: &str, user: UserId, rail: Rail, amount: u64, points: u32) {
        let currency = match rail {
            Rail::Stars => "XTR",
            Rail::YooKassa => "RUB",
        };
        let now = self.app.now_ms();
        self.app
            .store
            .credit_payment(&PaymentRecord {
                id: id.into(),
                order_id: format!("order:{id}"),
                user,
                rail,
                status: PaymentStatus::Succeeded,
                amount,
                currency: currency.into(),
                points,
                created_ms: now,
                updated_ms: now,
            })
            .unwrap();
    }

    /// A day of a small service: users, payments on both rails (one yesterday), jobs that
    /// succeeded, failed and were cancelled, one running on GPU A with progress, two
    /// waiting (one in the priority lane), GPU B down.
    pub fn seed(&self) {
        let ann = self.user(1001, "ann");
        let bob = self.user(1002, "bob");
        self.pay("stars:ch-1", ann, Rail::Stars, 50, 100);
        self.advance(3_600_000);
        let cat = self.user(1003, "cat");
        self.pay("stars:ch-2", bob, Rail::Stars, 140, 330);
        self.pay("yookassa:2f1e", cat, Rail::YooKassa, 27_900, 330);
        // The next day (Moscow time): 2026-12-03 09:00 Moscow.
        self.advance(19 * 3_600_000);
        self.user(1001, "ann");
        self.pay("stars:ch-3", ann, Rail::Stars, 50, 100);

        self.submit(1, ann, Some("anime"), Lane::Normal);
        self.advance(2_000);
        self.run_next(GPU_A, 9_400, None);
        self.submit(2, bob, Some("tryon"), Lane::Normal);
        self.advance(1_500);
        self.run_next(
            GPU_A,
            3_100,
            Some("ComfyUI execution error in KSampler: CUDA out of memory"),
        );
        let c = self.submit(3, cat, None, Lane::Normal);
        self.advance(4_000);
        qwenedit::ops::cancel_job(&self.app, c).unwrap();
        self.submit(4, ann, Some("watercolor"), Lane::Normal);
        self.advance(1_000);
        self.run_next(GPU_A, 8_800, None);
        // Running now, and two waiting.
        let running = self.submit(5, bob, Some("pixar"), Lane::Normal);
        let lease = self
            .app
            .queue
            .lease_next(GPU_A, self.app.now_ms(), Duration::from_secs(60))
            .unwrap()
            .unwrap();
        assert_eq!(lease.id(), running);
        self.submit(6, cat, Some("anime"), Lane::Normal);
        self.advance(1_000);
        self.submit(7, ann, None, Lane::Priority);
        self.advance(4_200);

        let [a, b] = self.app.backends.all() else {
            panic!("two backends")
        };
        a.update(|h| {
            h.up = true;
            h.version = Some("0.3.75".into());
            h.device = Some("cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync".into());
            h.vram_total = 24 << 30;
            h.vram_free = 5 << 30;
            h.current_job = Some(running.to_string());
            h.progress = 40;
            h.jobs_done = 2;
            h.jobs_failed = 1;
            h.busy_ms = 18_200;
        });
        b.update(|h| {
            h.up = false;
            h.last_error = Some("cannot reach ComfyUI: connection refused".into());
        });
    }
}
