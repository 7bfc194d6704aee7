//! Set-up shared by the web tests: an application served on a port of its own
//! (engine, pool, router — as the binary wires them), a small HTTP/1.1 client with
//! a cookie jar, and sign-in through the chat `login` command.

use crate::helpers::*;
use execgov::clock::Clock;
use execgov::engine::{Engine, ReplyKind, Request};
use execgov::web::{Readiness, WebState};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The test config's `[web]` section, with `extra` lines added to it.
pub fn web_config(env: &TestEnv, extra: &str) {
    let path = env.config_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "[web]\nlisten = \"127.0.0.1:0\"\n",
        &format!("[web]\nlisten = \"127.0.0.1:0\"\n{extra}\n"),
        1,
    );
    std::fs::write(path, text).unwrap();
}

/// An application serving HTTP on loopback, with its pool; stopped when dropped.
pub struct WebApp {
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    pub readiness: Readiness,
    pub env: TestEnv,
    stop: CancellationToken,
}

impl Drop for WebApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl WebApp {
    /// `dave` is a web admin; `web_extra` adds lines to `[web]`.
    pub async fn start(backend: Backend, web_extra: &str) -> WebApp {
        Self::start_with_clock(backend, web_extra, Arc::new(execgov::clock::SystemClock)).await
    }

    pub async fn start_with_clock(
        backend: Backend,
        web_extra: &str,
        clock: Arc<dyn Clock>,
    ) -> WebApp {
        Self::start_in(TestEnv::new(backend).await, web_extra, clock).await
    }

    /// Serves `env`, whose config and manifests a test may have changed first.
    pub async fn start_in(env: TestEnv, web_extra: &str, clock: Arc<dyn Clock>) -> WebApp {
        web_config(&env, &format!("admins = [\"dave\"]\n{web_extra}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = env.config();
        config.web.public_url = format!("http://{addr}");
        let engine = execgov::app::build_engine(Arc::new(config), clock)
            .await
            .expect("engine builds");
        let stop = CancellationToken::new();
        let opts = execgov::runner::LocalOptions::from_engine(&engine);
        tokio::spawn(
            execgov::runner::Local::new(engine.clone(), opts).run_until_stopped(None, stop.clone()),
        );
        let readiness = Readiness::new();
        let state = WebState::new(engine.clone(), readiness.clone()).expect("web state");
        let app = execgov::web::router(state);
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        WebApp {
            addr,
            engine,
            readiness,
            env,
            stop,
        }
    }

    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// A browser-like client signed in as `name` through `login` in chat.
    pub async fn sign_in(&self, name: &str) -> Client {
        let link = self.login_link(name).await;
        let mut c = self.client();
        c.follow_sign_in_link(&link).await;
        c
    }

    /// The one-time link `login` answers `name` with in chat.
    pub async fn login_link(&self, name: &str) -> String {
        let command = execgov::command::Command::parse("login").unwrap();
        let reply = self
            .engine
            .handle(Request {
                actor: person(name),
                place: oncall(),
                command,
                private: true,
                files: Vec::new(),
            })
            .await;
        assert_eq!(
            reply.kind,
            ReplyKind::Private,
            "a sign-in link is private: {}",
            reply.text
        );
        let start = reply.text.find("http://").expect("the reply holds a link");
        reply.text[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }
}

/// One HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The value of the first `<input name="{name}" value="…">` on the page.
    pub fn input(&self, name: &str) -> Option<String> {
        let at = self.body.find(&format!("name=\"{name}\" value=\""))?;
        let rest = &self.body[at + name.len() + 15..];
        Some(rest[..rest.find('"')?].to_string())
    }
}

/// A tiny HTTP/1.1 client (one connection per request) that keeps cookies.
pub struct Client {
    pub addr: SocketAddr,
    pub cookies: BTreeMap<String, String>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            cookies: BTreeMap::new(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.send("GET", path, &[], None).await
    }

    pub async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        let body = serde_urlencoded::to_string(form).unwrap();
        self.send(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(body),
        )
        .await
    }

    pub async fn get_bearer(&mut self, path: &str, token: &str) -> Resp {
        self.send(
            "GET",
            path,
            &[("Authorization", &format!("Bearer {token}"))],
            None,
        )
        .await
    }

    pub async fn post_json(&mut self, path: &str, token: &str, json: serde_json::Value) -> Resp {
        let auth = format!("Bearer {token}");
        self.send(
            "POST",
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(json.to_string()),
        )
        .await
    }

    /// The session's CSRF token, read off a page that has forms.
    pub async fn csrf(&mut self) -> String {
        self.get("/account/tokens")
            .await
            .input("csrf")
            .expect("a signed-in page carries the CSRF token")
    }

    /// Opens a sign-in link and presses its button.
    pub async fn follow_sign_in_link(&mut self, link: &str) {
        let path = &link[link.find("/login/").expect("a /login/ link")..];
        let page = self.get(path).await;
        assert_eq!(page.status, 200, "the link's page opens: {}", page.body);
        let csrf = page.input("csrf").unwrap();
        let token = page.input("token").unwrap();
        let done = self
            .post_form("/login", &[("csrf", &csrf), ("token", &token)])
            .await;
        assert_eq!(done.status, 303, "signing in redirects: {}", done.body);
        assert!(
            self.cookies.contains_key("execgov_session"),
            "a session cookie was set"
        );
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Resp {
        self.send_bytes(method, path, headers, body.map(String::into_bytes))
            .await
    }

    /// [`Client::send`] with a body of any bytes.
    pub async fn send_bytes(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        let mut s = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req.push_str(&format!("Cookie: {}\r\n", jar.join("; ")));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or_default();
        if method != "GET" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut raw_req = req.into_bytes();
        raw_req.extend_from_slice(&body);
        // A server that refuses a large body may answer and close before reading it all.
        let _ = s.write_all(&raw_req).await;
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response");
        let head = String::from_utf8_lossy(&buf[..split]).to_string();
        let mut raw = buf[split + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("set-cookie")
                && let Some((name, rest)) = v.split_once('=')
            {
                let value = rest.split(';').next().unwrap_or("").to_string();
                if value.is_empty() || v.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_string(), value);
                }
            }
        }
        if headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
        {
            raw = dechunk(&raw);
        }
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&raw).to_string(),
        }
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&b[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
    out
}
