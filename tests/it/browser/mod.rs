//! The web UI in a real browser: headless Debian Chromium, driven over the
//! DevTools protocol (raw CDP on a WebSocket) by the small driver in this file.
//!
//! - `decisions.rs`: sign in from chat, approve with real clicks (Approve, then
//!   the confirmation); a deny reason sent with Enter denies, never approves;
//! - `layout.rs`: the lists and the audit page fit a laptop (1280 px) and a phone
//!   (390 px) with no hidden column, timestamps on one line, log words unbroken;
//! - `files.rs`: a file chosen in the run form reaches the script;
//! - `step_up.rs`: enrol at /account/2fa reading the secret off the page, approve a critical run with a code;
//! - `axe.rs`: axe-core finds no WCAG 2.1 AA violation on the pages people use.
//!
//! Needs `/usr/bin/chromium` (and axe-core, which `tests/run` installs): without
//! them the tests FAIL and say how to install them. Screenshots go to
//! `target/<profile>/browser/`.

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, oneshot};
use tokio_tungstenite::tungstenite::Message;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Any one browser step (a command, a page load) finishes within this.
const STEP: Duration = Duration::from_secs(30);

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// Headless Chromium in its own process group, killed (group and all) on drop.
struct Browser {
    child: tokio::process::Child,
    _profile: tempfile::TempDir,
    sink: Mutex<Sink>,
    pending: Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Value>>>>,
    next_id: AtomicU64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Browser {
    async fn launch() -> Browser {
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: the browser test needs Debian's Chromium. Install it with \
             `apt-get install -y chromium chromium-driver` (as root), then run the tests again"
        );
        let profile = tempfile::tempdir().unwrap();
        let child = tokio::process::Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("starting chromium");
        // Chromium writes its port and browser target to DevToolsActivePort.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = tokio::time::Instant::now() + STEP;
        let ws_url = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let [port, path, ..] = text.lines().collect::<Vec<_>>()[..]
            {
                break format!("ws://127.0.0.1:{port}{path}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromium did not open its DevTools port"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .expect("DevTools WebSocket");
        let (sink, mut stream) = ws.split();
        let pending: Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Value>>>> = Arc::default();
        let p = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Ok(text) = msg.to_text() else { continue };
                let Ok(v) = serde_json::from_str::<Value>(text) else {
                    continue;
                };
                if let Some(id) = v.get("id").and_then(|i| i.as_u64())
                    && let Some(tx) = p.lock().unwrap().remove(&id)
                {
                    let _ = tx.send(v);
                }
            }
        });
        Browser {
            child,
            _profile: profile,
            sink: Mutex::new(sink),
            pending,
            next_id: AtomicU64::new(1),
        }
    }

    /// One DevTools command; `session` addresses a page (flattened sessions).
    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.sink
            .lock()
            .await
            .send(Message::text(msg.to_string()))
            .await
            .expect("sending to chromium");
        let reply = tokio::time::timeout(STEP, rx)
            .await
            .unwrap_or_else(|_| panic!("{method} timed out"))
            .unwrap();
        assert!(reply.get("error").is_none(), "{method} failed: {reply}");
        reply["result"].clone()
    }

    /// A new tab, attached.
    async fn page(&self) -> Page<'_> {
        let target = self
            .call(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        let session = attached["sessionId"].as_str().unwrap().to_string();
        let page = Page {
            browser: self,
            session,
        };
        page.cmd("Page.enable", json!({})).await;
        page.cmd("Runtime.enable", json!({})).await;
        page.viewport(1280, 900, false).await;
        page
    }
}

struct Page<'a> {
    browser: &'a Browser,
    session: String,
}

impl Page<'_> {
    async fn cmd(&self, method: &str, params: Value) -> Value {
        self.browser.call(Some(&self.session), method, params).await
    }

    async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        let scale = if mobile { 2 } else { 1 };
        self.cmd(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile }),
        )
        .await;
    }

    /// A JavaScript expression's value (the page itself runs no script of ours).
    async fn eval(&self, expr: &str) -> Value {
        let r = self
            .cmd(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true }),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// The value of an expression that gives a promise, once it settles.
    async fn eval_async(&self, expr: &str) -> Value {
        let r = self
            .cmd(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(
            r.get("exceptionDetails").is_none(),
            "the page threw: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Marks the current document, so that [`Page::wait_loaded`] can tell it from
    /// the next one.
    async fn mark(&self) {
        self.eval("window.__execgovOld = true").await;
    }

    /// Waits until a new document (not the one [`Page::mark`] marked) at a URL
    /// ending in `path` has loaded.
    async fn wait_loaded(&self, path: &str) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let state = self
                .eval("[document.readyState, location.pathname + location.search, window.__execgovOld === true]")
                .await;
            if state[0] == "complete"
                && state[1].as_str().is_some_and(|u| u.ends_with(path))
                && state[2] == false
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "page {path} did not load (at {state})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn goto(&self, url: &str) {
        self.mark().await;
        self.cmd("Page.navigate", json!({ "url": url })).await;
        let path = &url[url.find("://").map(|i| i + 3).unwrap_or(0)..];
        self.wait_loaded(&path[path.find('/').unwrap_or(path.len())..])
            .await;
    }

    /// Clicks `selector` (a submit button) and waits for the page it leads to.
    async fn submit(&self, selector: &str, then_path: &str) {
        self.mark().await;
        self.click(selector).await;
        self.wait_loaded(then_path).await;
    }

    /// A real mouse click in the middle of the element `selector`.
    async fn click(&self, selector: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        let rect = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); if (!e) return null; e.scrollIntoView({{block: 'center'}}); \
                 const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
            ))
            .await;
        assert!(
            rect.is_array(),
            "no element {selector} on the page: {}",
            self.text().await
        );
        let (x, y) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.cmd(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1 }),
            )
            .await;
        }
    }

    /// Clicks into `selector` and types `text` as keyboard input.
    async fn type_into(&self, selector: &str, text: &str) {
        self.click(selector).await;
        self.cmd("Input.insertText", json!({ "text": text })).await;
    }

    /// Presses and releases Enter on the keyboard, where the focus is.
    async fn press_enter(&self) {
        self.cmd(
            "Input.dispatchKeyEvent",
            json!({ "type": "keyDown", "key": "Enter", "code": "Enter",
                    "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13, "text": "\r", "unmodifiedText": "\r" }),
        )
        .await;
        self.cmd(
            "Input.dispatchKeyEvent",
            json!({ "type": "keyUp", "key": "Enter", "code": "Enter",
                    "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13 }),
        )
        .await;
    }

    async fn text(&self) -> String {
        self.eval("document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A PNG of the whole page at the current width.
    async fn screenshot(&self, file: &Path) {
        let size = self
            .eval("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            .await;
        let png = self
            .cmd(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true, "clip": {
                    "x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1 } }),
            )
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png["data"].as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(file, bytes).unwrap();
    }
}

/// `target/<profile>/browser/`, next to the test binary's own output.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .to_path_buf();
    let dir = profile_dir.join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

mod axe;
mod decisions;
mod files;
mod layout;
mod step_up;
