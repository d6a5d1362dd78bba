//! Where an admin command goes: the running service's admin API when it holds the store's lock,
//! or the store itself when no service is running (CRATES.md trap 4).

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::CliError;
use crate::app::{App, Clock, load_or_create_token};
use crate::config::Config;

pub enum Target {
    /// No service runs: the command opened the stores itself.
    Direct(App),
    /// The service runs: the command goes through its admin API.
    Daemon(Daemon),
}

pub struct Daemon {
    base: String,
    token: SecretString,
    client: reqwest::blocking::Client,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

pub fn connect(config: Config) -> Result<Target, CliError> {
    let data_dir = config.storage.data_dir.clone();
    let mut addr = config.web.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let token_path = config.admin_token_path();
    let configured = config.web.admin_token.clone();
    match App::open(config, Clock::System) {
        Ok((app, _)) => return Ok(Target::Direct(app)),
        Err(e) if e.is_locked() => {}
        Err(e) => return Err(CliError(e.to_string())),
    }
    let token = match configured {
        Some(t) => t,
        None => load_or_create_token(&token_path).map_err(|e| {
            CliError(format!(
                "the service is running, but its admin token is unreadable ({e}); run as the service's user or set web.admin_token"
            ))
        })?,
    };
    let daemon = Daemon {
        base: format!("http://{addr}/api/v1"),
        token,
        client: reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()?,
    };
    // Make sure somebody answers before the command runs.
    match daemon.client.get(format!("http://{addr}/healthz")).send() {
        Ok(_) => Ok(Target::Daemon(daemon)),
        Err(_) => Err(CliError(format!(
            "the store in {} is locked by another process, but no qwenedit service answers at http://{addr}; is another qwenedit running with a different web.listen?",
            data_dir.display()
        ))),
    }
}

impl Daemon {
    /// `http://host:port/api/v1`
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> SecretString {
        self.token.clone()
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.send(self.client.get(format!("{}{path}", self.base)))
    }

    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, CliError> {
        self.send(self.client.post(format!("{}{path}", self.base)).json(body))
    }

    fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::blocking::RequestBuilder,
    ) -> Result<T, CliError> {
        let resp = req
            .bearer_auth(self.token.expose_secret())
            .send()
            .map_err(|e| CliError(format!("the service did not answer: {e}")))?;
        let status = resp.status();
        if status.is_success() {
            return resp
                .json()
                .map_err(|e| CliError(format!("unexpected answer from the service: {e}")));
        }
        let err: Option<ErrorBody> = resp.json().ok();
        Err(CliError(match err {
            Some(b) if b.code == "unauthorized" => format!(
                "the service refused the admin token ({}); check web.admin_token or the admin.token file in the data dir",
                b.message
            ),
            Some(b) => b.message,
            None => format!("the service answered {status}"),
        }))
    }
}
